// Bearer-token authentication for kiln server: a YAML file lists the tokens, and for each the
// subject it stands for (a person or a service, named in logs and audit records), the namespaces
// it may use and its role:
//
//   tokens:                         # or the list alone, at the top of the file
//     - token: 3f9a0c...            # at least 16 characters; `openssl rand -hex 32` makes one
//       subject: alice
//       namespaces: [ml, data]      # ["*"] for every namespace
//       role: write                 # read | write | admin
//
// Only SHA-256 digests of the tokens are kept in memory, and a presented token is checked against
// every entry in time that does not depend on its contents. No token ever appears in an error
// message or a log; subjects may.
//
// Thread-safety: a TokenAuthenticator is immutable once built; Authenticate may be called from
// several threads at once. Principal is a plain value.
#ifndef KILN_API_AUTH_H_
#define KILN_API_AUTH_H_

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace kiln::api {

// What a principal may do. Ordered: each role includes the ones before it (admin ⊃ write ⊃ read),
// so `role >= needed` is the check.
enum class Role { kRead, kWrite, kAdmin };

// "read", "write", "admin": as written in the tokens file.
std::string_view RoleName(Role role);

// Who a request comes from, once authenticated.
struct Principal {
  std::string subject;
  std::vector<std::string> namespaces;  // "*" stands for every namespace
  Role role = Role::kRead;

  // Whether the principal may use namespace `ns`. An empty `ns` means "across all namespaces"
  // (e.g. listing every namespace's workflows) and is allowed only to holders of "*".
  bool AllowsNamespace(std::string_view ns) const;
  // AllowsNamespace(ns) and a role at least `needed`.
  bool Allows(std::string_view ns, Role needed) const;
};

class TokenAuthenticator {
 public:
  // Shorter tokens are rejected when the file is loaded: they can be guessed.
  static constexpr size_t kMinTokenLength = 16;

  // Reads and parses the tokens file at `path`. Errors: kNotFound when it cannot be read (the
  // error names the path and the system's reason); otherwise as Parse.
  static Result<TokenAuthenticator> LoadFile(const std::string& path);

  // Parses `yaml_text`, naming `file_name` in errors. The text is a list of entries, or a map
  // whose only key `tokens` holds that list. Every entry needs token, subject, namespaces (a
  // non-empty list of namespace names or "*") and role; other fields are errors.
  // Errors: kInvalidArgument whose message lists every problem found, one per line, sorted by
  // position, each as "file:line:column: field: what is wrong", e.g.
  //   tokens.yaml:9:11: tokens[1].role: "writer" is not one of read, write, admin
  // Fields are named tokens[i].<field> in both forms of the file. Problems: YAML syntax, wrong
  // types, missing, empty or unknown fields, a token shorter than kMinTokenLength or holding
  // whitespace or control characters, the same token twice, a file with no tokens.
  static Result<TokenAuthenticator> Parse(std::string_view file_name, const std::string& yaml_text);

  // The principal that `authorization` (the whole value of an Authorization header,
  // "Bearer <token>", the scheme matched case-insensitively) stands for, or nullptr when the
  // header is malformed, has another scheme, carries no token or an unknown one.
  // The returned pointer is owned by this authenticator and valid while it lives (moves
  // included). Runs in time independent of the token's contents: the token's SHA-256 digest is
  // compared with every entry's with CRYPTO_memcmp, with no early exit.
  const Principal* Authenticate(std::string_view authorization) const;

  // The number of tokens.
  size_t size() const { return entries_.size(); }

 private:
  using Digest = std::array<unsigned char, 32>;
  struct Entry {
    Digest digest;
    Principal principal;
  };

  explicit TokenAuthenticator(std::vector<Entry> entries) : entries_(std::move(entries)) {}

  std::vector<Entry> entries_;
};

}  // namespace kiln::api

#endif  // KILN_API_AUTH_H_
