// Building bwrap command lines and reading bwrap's own failures.
// Thread-safety: pure functions (BwrapArgv reads the host's / directory).
#ifndef KILN_EXECUTOR_INTERNAL_BWRAP_H_
#define KILN_EXECUTOR_INTERNAL_BWRAP_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "executor/sandbox.h"

namespace kiln::executor::internal {

// The full argv that runs `argv` inside `sandbox`: bwrap_path, the layout options, "--", argv.
// The root is a tmpfs holding read-only binds of the host's top-level entries (symlinks such as
// /bin -> usr/bin kept as symlinks), so binds at new top-level paths (/data) can be created; it is
// remounted read-only after the binds.
std::vector<std::string> BwrapArgv(const std::string& bwrap_path, const Sandbox& sandbox,
                                   const std::string& working_dir,
                                   const std::vector<std::string>& argv);

// When `stderr_first_line` is bwrap's own complaint ("bwrap: execvp foo: No such file or
// directory"), the start error it means ("executable not found: foo"); otherwise nullopt.
std::optional<std::string> BwrapStartError(std::string_view stderr_first_line);

}  // namespace kiln::executor::internal

#endif  // KILN_EXECUTOR_INTERNAL_BWRAP_H_
