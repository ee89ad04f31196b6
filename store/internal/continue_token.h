// Continue tokens for keyset pagination of workflows on (created_at, uid). Shared by every Store
// implementation so a token means the same thing whichever database produced it.
// Thread-safety: pure functions.
#ifndef KILN_STORE_INTERNAL_CONTINUE_TOKEN_H_
#define KILN_STORE_INTERNAL_CONTINUE_TOKEN_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "store/store.h"

namespace kiln::store::internal {

// The last row of a page: the next page starts strictly after it.
struct PageKey {
  int64_t created_at = 0;
  std::string uid;
};

// "v1:<created_at>:<uid>". Opaque to callers.
std::string EncodeContinueToken(const PageKey& key);

// Errors: kInvalidArgument when `token` was not produced by EncodeContinueToken.
Result<PageKey> DecodeContinueToken(std::string_view token);

// The page ListWorkflows returns from `rows`, what ListWorkflowsQuery's statement read (at most
// limit + 1 rows): the first `limit` of them (all for limit <= 0), and a continue token after
// the last of those when there were more.
WorkflowPage PageOf(std::vector<WorkflowRecord> rows, int limit);

}  // namespace kiln::store::internal

#endif  // KILN_STORE_INTERNAL_CONTINUE_TOKEN_H_
