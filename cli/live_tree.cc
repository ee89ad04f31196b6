#include "cli/live_tree.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace kiln::cli {

namespace {

constexpr std::chrono::milliseconds kMinInterval{100};  // at most 10 frames a second
constexpr std::chrono::seconds kTick{1};                // durations of running steps count

bool Set(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0';
}

}  // namespace

bool StdoutIsCapableTerminal() {
  if (::isatty(STDOUT_FILENO) != 1) return false;
  const char* term = std::getenv("TERM");
  return term == nullptr || std::strcmp(term, "dumb") != 0;
}

LiveTree::LiveTree(boost::asio::io_context& io, const scheduler::WorkflowState& state,
                   std::function<bool()> active)
    : state_(state), active_(std::move(active)), timer_(io) {
  options_.unicode =
      LocaleIsUtf8(std::getenv("LC_ALL"), std::getenv("LC_CTYPE"), std::getenv("LANG"));
  options_.color = !Set("NO_COLOR");
}

void LiveTree::Changed() {
  if (finished_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_draw_ >= kMinInterval) {
    Draw();
  } else {
    Schedule(last_draw_ + kMinInterval);
  }
}

void LiveTree::Finish() {
  if (finished_) return;
  finished_ = true;
  Draw();
  armed_ = false;
  timer_.cancel();
}

void LiveTree::Schedule(std::chrono::steady_clock::time_point at) {
  if (armed_ && timer_.expiry() <= at) return;  // a frame is due sooner already
  timer_.expires_at(at);                        // cancels the wait for a later one
  armed_ = true;
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || finished_) return;
    armed_ = false;
    Draw();
  });
}

void LiveTree::Draw() {
  // The terminal's size now (it may have been resized). One column and one row are left free:
  // a line as wide as the terminal wraps on some terminals, and a frame as tall as the screen
  // would scroll its first line out of reach of the next redraw.
  struct winsize ws {};
  size_t columns = 80, rows = 24;
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 && ws.ws_row > 0) {
    columns = ws.ws_col;
    rows = ws.ws_row;
  }
  options_.columns = columns > 1 ? columns - 1 : 1;
  options_.rows = rows > 1 ? rows - 1 : 1;
  std::vector<std::string> lines = RenderTree(state_, std::chrono::system_clock::now(), options_);
  std::string frame = EraseLines(drawn_lines_);
  for (const std::string& line : lines) frame += line + "\n";
  std::fwrite(frame.data(), 1, frame.size(), stdout);
  std::fflush(stdout);
  drawn_lines_ = lines.size();
  last_draw_ = std::chrono::steady_clock::now();
  if (!finished_ && active_ && active_()) Schedule(last_draw_ + kTick);
}

}  // namespace kiln::cli
