// The live view of `kiln run` on a terminal: a workflow's nodes as a tree, as `argo watch` draws
// it, rendered from the controller's state. Pure: no I/O, no clock, no environment; the caller
// says what the terminal can do (TreeViewOptions) and what time it is.
// Thread-safety: pure functions of their arguments.
#ifndef KILN_CLI_TREE_VIEW_H_
#define KILN_CLI_TREE_VIEW_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "scheduler/state.h"

namespace kiln::cli {

struct TreeViewOptions {
  // Box-drawing glyphs and symbols (├─ ✔ …) when true; ASCII (|- + ...) otherwise.
  bool unicode = true;
  // ANSI colours on the phase symbols and the header's phase.
  bool color = false;
  // No line is wider than this many columns (long names and messages end with …); 0: no limit.
  // Each UTF-8 code point counts as one column.
  size_t columns = 0;
  // At most this many lines in all; when the tree has more, failed and running nodes (and their
  // ancestors) are kept first and the rest summarised in a last line "… N more succeeded".
  // 0: no limit; otherwise at least 3 lines are drawn.
  size_t rows = 0;
};

// The lines (without newlines) showing `state` at `now`: first the workflow's name, phase and
// duration, then the nodes depth first from the root (the exit handler's tree after it), each
// with its tree glyphs, phase symbol (✔ Succeeded, ✖ Failed, ⚠ Error, ◷ Pending, ● Running,
// ○ Skipped/Omitted), display name, retries of a Retry node ("(2 retries)"), duration (running
// nodes count up to `now`) and, for a Failed or Error node, its message. A StepGroup with one
// child is not drawn (the child takes its place); siblings are in start order.
// The tree is built from each node's `parent`, so the node's own child lists are not needed.
std::vector<std::string> RenderTree(const scheduler::WorkflowState& state, scheduler::Time now,
                                    const TreeViewOptions& options);

// Whether the locale the environment names is UTF-8: the first non-empty of LC_ALL, LC_CTYPE and
// LANG (pass nullptr for an unset one) ends in ".UTF-8" or ".utf8" (any case).
bool LocaleIsUtf8(const char* lc_all, const char* lc_ctype, const char* lang);

// ANSI sequences that redraw a frame in place: move the cursor to the start of the first of the
// `previous_lines` lines drawn last time and clear to the end of the screen ("" when 0).
std::string EraseLines(size_t previous_lines);

}  // namespace kiln::cli

#endif  // KILN_CLI_TREE_VIEW_H_
