#include "kube/token_source.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace kiln::kube {

Result<std::string> ReadTokenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(Code::kNotFound, "cannot read " + path + ": " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string token = ss.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
    token.pop_back();
  if (token.empty()) return MakeError(Code::kInvalidArgument, "token file " + path + " is empty");
  return token;
}

TokenSource::TokenSource(std::string token, std::string file, std::chrono::milliseconds max_age,
                         Now now)
    : token_(std::move(token)),
      file_(std::move(file)),
      max_age_(max_age),
      now_(std::move(now)),
      read_at_(now_()) {}

const std::string& TokenSource::Token() {
  if (file_.empty()) return token_;
  auto now = now_();
  if (now - read_at_ < max_age_) return token_;
  ++rereads_;
  auto read = ReadTokenFile(file_);
  if (!read) {
    // Keep the copy and try again on the next call: a rotation may be mid-way (the kubelet
    // swaps a symlink), and a token that expired shows up as a 401 on the request itself.
    last_error_ = read.error();
    return token_;
  }
  token_ = std::move(*read);
  read_at_ = now;
  last_error_.reset();
  return token_;
}

}  // namespace kiln::kube
