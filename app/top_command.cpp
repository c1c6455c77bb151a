// `brigade top`: the cluster in the terminal, refreshed every second, over
// BASP (the request behind `cluster status`). Plain ANSI escapes on the
// alternate screen (works over SSH and in tmux; no curses needed for one
// table); `q` quits. It keeps one client, which fails over between the
// --host entries; when none answers it says so on the screen and retries.
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "app/server_commands.hpp"
#include "net/client.hpp"

namespace brigade::app {

namespace {

volatile sig_atomic_t top_stop = 0;
volatile sig_atomic_t top_resized = 0;
void on_stop(int) { top_stop = 1; }
void on_winch(int) { top_resized = 1; }

/// The terminal in "read keys one by one" mode with the alternate screen,
/// restored however the loop ends.
class terminal {
 public:
  terminal() {
    in_tty_ = isatty(STDIN_FILENO) != 0;
    out_tty_ = isatty(STDOUT_FILENO) != 0;
    // Keys one by one only for a full-screen session: with output to a pipe
    // (`top | head`) the terminal is left alone, so nothing needs restoring.
    if (in_tty_ && out_tty_ && tcgetattr(STDIN_FILENO, &saved_) == 0) {
      termios raw = saved_;
      raw.c_lflag &= static_cast<tcflag_t>(~(ICANON | ECHO));  // keys at once, unechoed; ^C still signals
      raw.c_cc[VMIN] = 0;
      raw.c_cc[VTIME] = 0;
      raw_ = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    if (out_tty_) std::fputs("\x1b[?1049h\x1b[?25l", stdout);  // alternate screen, cursor hidden
  }
  ~terminal() {
    if (out_tty_) std::fputs("\x1b[?25h\x1b[?1049l", stdout);
    std::fflush(stdout);
    if (raw_) tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  bool tty() const { return out_tty_; }
  int width() const {
    winsize w{};
    if (out_tty_ && ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col > 0) return w.ws_col;
    return 160;
  }
  int height() const {
    winsize w{};
    if (out_tty_ && ioctl(STDOUT_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_row > 0) return w.ws_row;
    return 1 << 20;
  }
  /// Waits up to `ms` for a key; true when `q` was pressed or a signal
  /// asked to stop. After standard input ends (a script) it only waits.
  bool wait_quit(int ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
    for (;;) {
      if (top_stop) return true;
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()).count();
      if (left <= 0) return false;
      pollfd p{eof_ ? -1 : STDIN_FILENO, POLLIN, 0};  // a negative fd is ignored: a plain sleep
      const int r = poll(&p, 1, static_cast<int>(left));
      if (r < 0) {
        if (errno != EINTR) return false;
        if (top_resized) return false;  // redraw at the new width now
        continue;
      }
      if (r == 0) return false;
      char buf[64];
      const ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
      if (n <= 0) {
        // The end of a pipe or file; on a terminal a 0 is only "nothing to read now".
        if ((n == 0 && !in_tty_) || (n < 0 && errno != EAGAIN && errno != EINTR)) eof_ = true;
        if (n == 0 && in_tty_) return false;
        continue;
      }
      for (ssize_t i = 0; i < n; ++i)
        if (buf[i] == 'q' || buf[i] == 'Q') return true;
    }
  }

 private:
  termios saved_{};
  bool in_tty_ = false, out_tty_ = false, raw_ = false, eof_ = false;
};


std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

/// Text that came from the network (node names, addresses, errors) with its
/// control bytes replaced: it must not drive the operator's terminal.
std::string printable(const std::string& in) {
  std::string out = in;
  for (char& ch : out)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) ch = '?';
  return out;
}

std::string clock_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%H:%M:%S", &tm);
  return buf;
}

/// Seconds as the page shows them: ms below one second.
std::string secs(double s) { return s < 1 ? fmt("%.0fms", s * 1000) : fmt("%.2fs", s); }

/// One frame: a header, one row per node, a total line.
std::vector<std::string> frame(const cluster_status& cs, bool color) {
  runtime::dash_snapshot st;
  st.cluster = cs.cluster;
  for (const auto& n : cs.nodes) st.nodes.push_back(to_dash_node(n));
  std::vector<std::string> out;
  const double desired = st.desired_replicas();
  const auto live = std::count_if(st.nodes.begin(), st.nodes.end(), [](const auto& n) { return n.state != "dead"; });
  std::string head = st.cluster.empty() ? std::string("single node (memory store)")
                                        : fmt("cluster %s: %zu live of %zu members", printable(st.cluster).c_str(),
                                              static_cast<size_t>(live), st.nodes.size());
  if (desired > 0) head += fmt(", desired replicas %.0f", desired);
  out.push_back(head);
  out.push_back("");
  out.push_back(fmt("%-22s %-9s %8s %6s %9s %9s %9s %6s %5s %5s %8s %8s %5s %6s", "NODE", "STATE", "SESSIONS",
                    "QUEUE", "TOKENS/S", "TTFT p50", "TTFT p99", "BATCH", "BUSY", "KV", "RESTARTS", "REFUSED",
                    "LOAD", "BEAT"));
  double sessions = 0, queue = 0, tps = 0;
  for (const auto& n : st.nodes) {
    std::string state = fmt("%-9s", printable(n.state).c_str());
    if (color) {
      const char* c = n.state == "active" ? "32" : n.state == "dead" ? "31" : "33";
      state = fmt("\x1b[%sm%s\x1b[0m", c, state.c_str());
    }
    out.push_back(fmt("%-22.22s %s %8.0f %6.0f %9.1f %9s %9s %6.1f %4.0f%% %4.0f%% %8.0f %8.0f %5.2f %5.1fs",
                      printable(n.name).c_str(), state.c_str(), n.figure("sessions"), n.figure("queue_depth"),
                      n.figure("tokens_per_second"), secs(n.figure("ttft_p50_seconds")).c_str(),
                      secs(n.figure("ttft_p99_seconds")).c_str(), n.figure("mean_batch_size"),
                      100 * n.figure("engine_busy_ratio"), 100 * n.figure("kv_cache_usage_ratio"),
                      n.figure("session_restarts"), n.figure("requests_rejected"), n.figure("load_ratio"),
                      n.heartbeat_age_seconds));
    if (n.state != "dead") {
      sessions += n.figure("sessions");
      queue += n.figure("queue_depth");
      tps += n.figure("tokens_per_second");
    }
  }
  out.push_back(fmt("%-22s %-9s %8.0f %6.0f %9.1f", "total (live)", "", sessions, queue, tps));
  return out;
}

/// Lines past the terminal's width are cut (escape sequences do not count).
std::string fit(const std::string& line, int width) {
  std::string out;
  int shown = 0;
  bool cut = false;
  for (size_t i = 0; i < line.size(); ++i) {
    if (line[i] == '\x1b') {  // copy a whole CSI sequence
      const size_t e = line.find('m', i);
      out.append(line, i, e == std::string::npos ? std::string::npos : e - i + 1);
      if (e == std::string::npos) break;
      i = e;
      continue;
    }
    // A UTF-8 continuation byte goes with its character: kept or cut with it.
    if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80) {
      cut = shown >= width;
      if (!cut) ++shown;
    }
    if (!cut) out.push_back(line[i]);
  }
  return out;
}

}  // namespace

int top(const top_cli& a) {
  std::vector<net::endpoint> eps;
  std::string why;
  if (!net::parse_endpoints(a.host, a.port, eps, why)) return fail(exit_bad_input, why);
  if (a.interval_s < 0.1 || a.interval_s > 3600)
    return fail(exit_bad_input, "--interval must be between 0.1 and 3600 seconds");
  if (a.iterations < 0) return fail(exit_bad_input, "--iterations must be 0 (until q) or more");
  signal(SIGPIPE, SIG_IGN);  // a closed pipe is a write error below, not a silent death
  net::client_options o;
  o.host = a.host;
  o.port = a.port;
  o.connect_timeout = std::chrono::milliseconds(1000);
  o.max_attempts = static_cast<int>(net::expand_endpoints(eps).size()) + 1;  // each node once, then say so

  terminal term;
  struct sigaction sa {};
  sa.sa_handler = on_stop;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGHUP, &sa, nullptr);
  sa.sa_handler = on_winch;
  sigaction(SIGWINCH, &sa, nullptr);
  const bool color = term.tty() && std::getenv("NO_COLOR") == nullptr;

  std::unique_ptr<net::client> c;
  bool answered = false;
  for (int shown = 0; a.iterations == 0 || shown < a.iterations; ++shown) {
    top_resized = 0;
    net::client_error err;
    cluster_status st;
    if (!c) c = net::client::connect(o, err);
    const bool ok = c && c->cluster(st, err);
    std::vector<std::string> lines;
    if (ok) {
      answered = true;
      lines = frame(st, color);
    } else {
      c.reset();  // a fresh connection next time, from the first entry
      if (!term.tty() && !answered) return fail(exit_code_for(err), err.message);
      lines = {fmt("no node answers at %s; retrying every %gs", printable(a.host).c_str(), a.interval_s),
               "(" + printable(err.message) + ")"};
    }
    const int width = term.width() - 1;  // the last column would wrap with some terminals
    std::string out = term.tty() ? "\x1b[H" : "";
    out += fit(fmt("brigade top  %s  every %gs, q quits", clock_now().c_str(), a.interval_s), width) +
           (term.tty() ? "\x1b[K\n" : "\n");
    // On the screen at most its height (the clock line included): no scrolling.
    const size_t room = static_cast<size_t>(std::max(1, term.height() - 1));
    if (term.tty() && lines.size() > room) {
      const size_t more = lines.size() - room + 1;
      lines.resize(room - 1);
      lines.push_back(fmt("(%zu more lines: a taller terminal shows them)", more));
    }
    for (const auto& l : lines) out += fit(l, width) + (term.tty() ? "\x1b[K\n" : "\n");
    out += term.tty() ? "\x1b[J" : "\n";
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
    if (std::ferror(stdout)) return exit_ok;  // the reader went away (a closed pipe)
    if (a.iterations != 0 && shown + 1 >= a.iterations) break;
    if (term.wait_quit(static_cast<int>(a.interval_s * 1000))) break;
  }
  return exit_ok;
}

}  // namespace brigade::app
