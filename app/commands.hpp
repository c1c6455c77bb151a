// Subcommand entry points of the `brigade` program and its exit codes
// (shared/cli.md). Each returns the process exit code; errors are printed to
// standard error as one sentence naming the cause.
#pragma once

#include <string>

namespace brigade::app {

enum exit_code : int {
  exit_ok = 0,
  exit_other = 1,         // anything not below
  exit_bad_input = 2,     // bad usage or bad input (unreadable or malformed files included)
  exit_overloaded = 3,    // refused (overloaded) after retries
  exit_store = 4,         // store unavailable
  exit_unauthorized = 5,  // unauthorized or unknown session
};

/// `brigade model info FILE [--json]`
int model_info(const std::string& file, bool json);
/// `brigade model tokenize -m FILE [--pieces]`: standard input verbatim -> one
/// line of ids, or with `pieces` one line per token: id, tab, its bytes.
int model_tokenize(const std::string& file, bool pieces);

/// Prints "brigade: <message>" to standard error and returns `code`.
int fail(int code, const std::string& message);

}  // namespace brigade::app
