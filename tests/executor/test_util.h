// Helpers shared by the executor tests: temporary directories, running one process to its end.
#ifndef KILN_TESTS_EXECUTOR_TEST_UTIL_H_
#define KILN_TESTS_EXECUTOR_TEST_UTIL_H_

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include "executor/process.h"

namespace kiln::executor::testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "kiln-exec-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline ProcessSpec Spec(std::vector<std::string> argv) {
  ProcessSpec spec;
  spec.argv = std::move(argv);
  spec.env = {{"PATH", "/usr/bin:/bin"}};
  return spec;
}

// Starts `spec` and runs `io` until it has been reported.
inline ProcessResult RunToEnd(ProcessRunner& runner, boost::asio::io_context& io,
                              ProcessSpec spec) {
  std::optional<ProcessResult> result;
  runner.Start(std::move(spec), [&](ProcessResult r) { result = std::move(r); });
  io.restart();
  while (!result && io.run_one() > 0) {
  }
  if (!result) throw std::runtime_error("io_context ran out of work before the process ended");
  return *result;
}

// Reads one line a step writes to the FIFO at `path`: a handshake that says the step reached a
// point, without sleeping. Gives up after 10 s so a broken step fails the test instead of hanging.
inline std::string ReadFifoLine(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open fifo " + path);
  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[256];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) line.append(buf, static_cast<size_t>(n));
    if (n == 0 && (pfd.revents & POLLHUP)) break;
  }
  ::close(fd);
  if (const size_t nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
  return line;
}

inline void MakeFifo(const std::string& path) {
  if (::mkfifo(path.c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed: " + path);
}

}  // namespace kiln::executor::testing

#endif  // KILN_TESTS_EXECUTOR_TEST_UTIL_H_
