// Continue tokens for keyset pagination of workflows on (created_at, uid). Shared by every Store
// implementation so a token means the same thing whichever database produced it.
// Thread-safety: pure functions.
#ifndef KILN_STORE_INTERNAL_CONTINUE_TOKEN_H_
#define KILN_STORE_INTERNAL_CONTINUE_TOKEN_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.h"

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

}  // namespace kiln::store::internal

#endif  // KILN_STORE_INTERNAL_CONTINUE_TOKEN_H_
