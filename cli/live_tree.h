// `kiln run` on a terminal: the workflow's tree (cli/tree_view.h) drawn on stdout and redrawn in
// place as the run goes, at most ten times a second, and once a second while it runs so that
// durations count.
// Thread-safety: everything runs on the io_context's thread (the driver's).
#ifndef KILN_CLI_LIVE_TREE_H_
#define KILN_CLI_LIVE_TREE_H_

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>

#include "cli/tree_view.h"
#include "scheduler/state.h"

namespace kiln::cli {

// Whether `kiln run` should draw the live tree: stdout is a terminal that can move its cursor
// (TERM is not "dumb").
bool StdoutIsCapableTerminal();

class LiveTree {
 public:
  // `active` says whether the run still goes on (the once-a-second redraw stops when it returns
  // false, so the io_context can run out of work). Glyphs follow the locale (LocaleIsUtf8),
  // colours are on unless NO_COLOR is set and non-empty.
  // REQUIRES: `io` and `state` outlive this; stdout is a terminal.
  LiveTree(boost::asio::io_context& io, const scheduler::WorkflowState& state,
           std::function<bool()> active);
  LiveTree(const LiveTree&) = delete;
  LiveTree& operator=(const LiveTree&) = delete;

  // The state changed: redraws now, or within 100 ms when the last frame is more recent.
  void Changed();
  // Draws the final frame, which stays on screen, and stops redrawing. Idempotent.
  void Finish();

 private:
  void Draw();
  void Schedule(std::chrono::steady_clock::time_point at);

  const scheduler::WorkflowState& state_;
  std::function<bool()> active_;
  TreeViewOptions options_;
  boost::asio::steady_timer timer_;
  bool armed_ = false;
  bool finished_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
  size_t drawn_lines_ = 0;
};

}  // namespace kiln::cli

#endif  // KILN_CLI_LIVE_TREE_H_
