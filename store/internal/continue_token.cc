#include "store/internal/continue_token.h"

#include <charconv>
#include <utility>

namespace kiln::store::internal {

namespace {
constexpr std::string_view kPrefix = "v1:";
}  // namespace

std::string EncodeContinueToken(const PageKey& key) {
  return std::string(kPrefix) + std::to_string(key.created_at) + ":" + key.uid;
}

Result<PageKey> DecodeContinueToken(std::string_view token) {
  auto invalid = [&] {
    return MakeError(Code::kInvalidArgument,
                     "invalid continue token \"" + std::string(token) +
                         "\"; pass the token from the previous page, or none for the first page");
  };
  if (!token.starts_with(kPrefix)) return invalid();
  std::string_view rest = token.substr(kPrefix.size());
  size_t colon = rest.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == rest.size()) return invalid();
  PageKey key;
  std::string_view number = rest.substr(0, colon);
  auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), key.created_at);
  if (ec != std::errc() || end != number.data() + number.size()) return invalid();
  key.uid = std::string(rest.substr(colon + 1));
  return key;
}

WorkflowPage PageOf(std::vector<WorkflowRecord> rows, int limit) {
  WorkflowPage page;
  if (limit > 0 && rows.size() > static_cast<size_t>(limit)) {
    rows.resize(static_cast<size_t>(limit));
    page.continue_token = EncodeContinueToken({rows.back().created_at, rows.back().uid});
  }
  page.workflows = std::move(rows);
  return page;
}

}  // namespace kiln::store::internal
