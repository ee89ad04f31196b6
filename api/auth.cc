#include "api/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "base/check.h"
#include "base/strings.h"
#include "dag/diagnostic.h"
#include "dag/internal/yaml_tree.h"
#include "dag/names.h"

namespace kiln::api {

namespace {

namespace yaml = dag::yaml;
using dag::Diagnostics;
using dag::Location;

const std::vector<std::string_view> kEntryFields = {"token", "subject", "namespaces", "role"};
constexpr std::string_view kRoles = "read, write, admin";

Location LocOf(const yaml::Node& node) {
  yaml::Mark m = node.Mark();
  if (m.line < 0) return {};
  return Location{static_cast<uint32_t>(m.line + 1), static_cast<uint32_t>(m.column + 1)};
}

// What a node is, for "expected X, found Y". Scalars are all "a string": every field here is
// text, whatever YAML would type a plain scalar as.
std::string_view Describe(const yaml::Node& node) {
  switch (node.Type()) {
    case yaml::NodeType::kMap: return "a map";
    case yaml::NodeType::kSequence: return "a list";
    case yaml::NodeType::kNull: return "null";
    case yaml::NodeType::kScalar: return "a string";
    case yaml::NodeType::kUndefined: break;
  }
  return "nothing";
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i] >= 'A' && a[i] <= 'Z' ? static_cast<char>(a[i] - 'A' + 'a') : a[i];
    char y = b[i] >= 'A' && b[i] <= 'Z' ? static_cast<char>(b[i] - 'A' + 'a') : b[i];
    if (x != y) return false;
  }
  return true;
}

// Whitespace and control characters cannot travel in an Authorization header (and a token with
// a trailing newline copied from `cat` would never match).
bool HasUnsendableCharacter(std::string_view token) {
  for (unsigned char c : token) {
    if (c <= 0x20 || c == 0x7f) return true;
  }
  return false;
}

std::optional<Role> ParseRole(std::string_view name) {
  if (name == "read") return Role::kRead;
  if (name == "write") return Role::kWrite;
  if (name == "admin") return Role::kAdmin;
  return std::nullopt;
}

// Every error of `diags`, sorted by position, one "file:line:column: field: message" per line.
std::unexpected<Error> ToError(Diagnostics& diags) {
  diags.Sort();
  std::string message;
  for (const dag::Diagnostic& d : diags.items()) {
    if (d.severity != dag::Severity::kError) continue;
    if (!message.empty()) message += '\n';
    message += d.ToString();
  }
  return MakeError(Code::kInvalidArgument, std::move(message));
}

// Reads the entries of one tokens file. Never puts a token's text into a diagnostic.
class Parser {
 public:
  Parser(std::string_view file, Diagnostics& diags) : file_(file), diags_(diags) {}

  void Error(const yaml::Node& at, const std::string& path, std::string message) {
    diags_.Error(file_, LocOf(at), path, std::move(message));
  }
  void Error(Location at, const std::string& path, std::string message) {
    diags_.Error(file_, at, path, std::move(message));
  }

  // The text of required string field `value` at `path` (undefined when absent, reported at
  // `entry`), or nullopt after reporting why there is none; `hint` says what to write.
  std::optional<std::string_view> RequiredString(const yaml::Node& entry, const yaml::Node& value,
                                                 const std::string& path, std::string_view hint) {
    if (!value.IsDefined()) {
      Error(entry, path, "required field missing; " + std::string(hint));
      return std::nullopt;
    }
    if (value.IsNull() || (value.IsScalar() && value.Scalar().empty())) {
      Error(value, path, "empty; " + std::string(hint));
      return std::nullopt;
    }
    if (!value.IsScalar()) {
      Error(value, path, "expected a string, found " + std::string(Describe(value)));
      return std::nullopt;
    }
    return value.Scalar();
  }

 private:
  std::string file_;
  Diagnostics& diags_;
};

}  // namespace

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kRead: return "read";
    case Role::kWrite: return "write";
    case Role::kAdmin: return "admin";
  }
  return "unknown";
}

bool Principal::AllowsNamespace(std::string_view ns) const {
  for (const std::string& allowed : namespaces) {
    if (allowed == "*" || (!ns.empty() && allowed == ns)) return true;
  }
  return false;
}

bool Principal::Allows(std::string_view ns, Role needed) const {
  return role >= needed && AllowsNamespace(ns);
}

namespace {

std::array<unsigned char, 32> Sha256(std::string_view text) {
  std::array<unsigned char, 32> digest{};
  unsigned int length = 0;
  KILN_CHECK(EVP_Digest(text.data(), text.size(), digest.data(), &length, EVP_sha256(), nullptr) == 1);
  KILN_CHECK(length == digest.size());
  return digest;
}

}  // namespace

Result<TokenAuthenticator> TokenAuthenticator::Parse(std::string_view file_name,
                                                     const std::string& yaml_text) {
  Diagnostics diags;
  std::unique_ptr<yaml::Tree> tree =
      yaml::Tree::Parse(file_name, yaml_text, yaml::BuildOptions{}, diags);
  Parser p(file_name, diags);
  if (tree == nullptr && !diags.has_errors()) p.Error(Location{}, "", "cannot parse the YAML");
  if (diags.has_errors()) return ToError(diags);

  const std::string kNoTokens =
      "the file lists no tokens; add entries of token, subject, namespaces and role";
  const std::vector<yaml::Node>& documents = tree->documents();
  if (documents.empty() || documents.front().IsNull()) {
    p.Error(documents.empty() ? Location{} : LocOf(documents.front()), "", kNoTokens);
    return ToError(diags);
  }
  if (documents.size() > 1) {
    p.Error(documents[1], "", "more than one YAML document; list every token in the first");
  }

  // The list of entries: the document itself, or its `tokens` field.
  yaml::Node root = documents.front();
  yaml::Node list;
  if (root.IsSequence()) {
    list = root;
  } else if (root.IsMap()) {
    for (auto it = root.begin(); it != root.end(); ++it) {
      if (!it->first.IsScalar()) {
        p.Error(it->first, "", "map keys must be strings, found " + std::string(Describe(it->first)));
      } else if (it->first.Scalar() == "tokens") {
        list = it->second;
      } else {
        std::string_view key = it->first.Scalar();
        p.Error(it->first, std::string(key), "unknown field" + DidYouMean(key, {"tokens"}));
      }
    }
    if (!list.IsDefined()) {
      p.Error(root, "tokens", "required field missing; it holds the list of tokens");
    } else if (list.IsNull()) {
      p.Error(list, "tokens", kNoTokens);
    } else if (!list.IsSequence()) {
      p.Error(list, "tokens", "expected a list of tokens, found " + std::string(Describe(list)));
    }
  } else {
    p.Error(root, "",
            "expected a list of tokens, or a map whose field tokens holds one; found " +
                std::string(Describe(root)));
  }
  if (!list.IsSequence()) return ToError(diags);
  if (list.size() == 0) p.Error(list, "tokens", kNoTokens);

  std::vector<Entry> entries;
  // Digest -> "tokens[i]" and subject of the first entry that has it.
  std::map<Digest, std::pair<std::string, std::string>> seen;
  size_t index = 0;
  for (const yaml::Node& node : list) {
    const std::string path = "tokens[" + std::to_string(index++) + "]";
    if (!node.IsMap()) {
      p.Error(node, path,
              "expected a map of token, subject, namespaces and role, found " +
                  std::string(Describe(node)));
      continue;
    }
    yaml::Node token_node, subject_node, namespaces_node, role_node;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) {
        p.Error(it->first, path, "map keys must be strings, found " + std::string(Describe(it->first)));
        continue;
      }
      std::string_view key = it->first.Scalar();
      if (key == "token") {
        token_node = it->second;
      } else if (key == "subject") {
        subject_node = it->second;
      } else if (key == "namespaces") {
        namespaces_node = it->second;
      } else if (key == "role") {
        role_node = it->second;
      } else {
        p.Error(it->first, path + "." + std::string(key), "unknown field" + DidYouMean(key, kEntryFields));
      }
    }

    bool ok = true;
    Entry entry{};
    std::optional<std::string_view> token = p.RequiredString(
        node, token_node, path + ".token",
        "every entry needs a secret token (make one with `openssl rand -hex 32`)");
    if (!token) {
      ok = false;
    } else if (HasUnsendableCharacter(*token)) {
      p.Error(token_node, path + ".token",
              "contains whitespace or control characters, which an Authorization header cannot "
              "carry");
      ok = false;
    } else if (token->size() < kMinTokenLength) {
      p.Error(token_node, path + ".token",
              "shorter than " + std::to_string(kMinTokenLength) +
                  " characters: a short token can be guessed; make one with `openssl rand -hex "
                  "32`");
      ok = false;
    } else {
      entry.digest = Sha256(*token);
    }

    std::optional<std::string_view> subject = p.RequiredString(
        node, subject_node, path + ".subject",
        "name the person or service this token stands for");
    if (subject) {
      entry.principal.subject = std::string(*subject);
    } else {
      ok = false;
    }

    const std::string ns_path = path + ".namespaces";
    const std::string ns_hint = "list the namespaces this token may use, or [\"*\"] for all";
    if (!namespaces_node.IsDefined()) {
      p.Error(node, ns_path, "required field missing; " + ns_hint);
      ok = false;
    } else if (!namespaces_node.IsSequence() || namespaces_node.size() == 0) {
      p.Error(namespaces_node, ns_path,
              (namespaces_node.IsSequence() ? std::string("empty list")
                                            : "expected a list, found " +
                                                  std::string(Describe(namespaces_node))) +
                  "; " + ns_hint);
      ok = false;
    } else {
      size_t j = 0;
      for (const yaml::Node& ns : namespaces_node) {
        const std::string ns_item = ns_path + "[" + std::to_string(j++) + "]";
        if (!ns.IsScalar()) {
          p.Error(ns, ns_item, "expected a namespace name or \"*\", found " + std::string(Describe(ns)));
          ok = false;
          continue;
        }
        std::string_view name = ns.Scalar();
        if (name != "*") {
          if (std::optional<std::string> problem = dag::ValidateDns1123Label(name)) {
            p.Error(ns, ns_item, *problem);
            ok = false;
            continue;
          }
        }
        entry.principal.namespaces.emplace_back(name);
      }
    }

    const std::string role_path = path + ".role";
    if (!role_node.IsDefined()) {
      p.Error(node, role_path, "required field missing; one of " + std::string(kRoles));
      ok = false;
    } else if (!role_node.IsScalar()) {
      p.Error(role_node, role_path,
              "expected one of " + std::string(kRoles) + ", found " + std::string(Describe(role_node)));
      ok = false;
    } else if (std::optional<Role> role = ParseRole(role_node.Scalar())) {
      entry.principal.role = *role;
    } else {
      p.Error(role_node, role_path,
              Quote(role_node.Scalar()) + " is not one of " + std::string(kRoles));
      ok = false;
    }

    // Checked last so that the duplicate is reported even when the entry has other problems.
    if (token && !HasUnsendableCharacter(*token) && token->size() >= kMinTokenLength) {
      auto [it, inserted] = seen.try_emplace(entry.digest, path, entry.principal.subject);
      if (!inserted) {
        const auto& [first_path, first_subject] = it->second;
        std::string who = first_subject.empty() ? "" : " (subject " + Quote(first_subject) + ")";
        p.Error(token_node, path + ".token",
                "the same token as " + first_path + who + "; each token must be unique");
        ok = false;
      }
    }
    if (ok) entries.push_back(std::move(entry));
  }
  if (diags.has_errors()) return ToError(diags);
  return TokenAuthenticator(std::move(entries));
}

Result<TokenAuthenticator> TokenAuthenticator::LoadFile(const std::string& path) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (file == nullptr) {
    return MakeError(Code::kNotFound,
                     "cannot open the tokens file: " + std::string(std::strerror(errno)), path);
  }
  std::string text;
  char buffer[8192];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) text.append(buffer, n);
  const bool failed = std::ferror(file.get()) != 0;
  const int error = errno;
  OPENSSL_cleanse(buffer, sizeof buffer);
  if (failed) {
    OPENSSL_cleanse(text.data(), text.size());
    return MakeError(Code::kNotFound,
                     "cannot read the tokens file: " + std::string(std::strerror(error)), path);
  }
  Result<TokenAuthenticator> result = Parse(path, text);
  // Only digests are kept; wipe the plain tokens this function read.
  OPENSSL_cleanse(text.data(), text.size());
  return result;
}

const Principal* TokenAuthenticator::Authenticate(std::string_view authorization) const {
  authorization = Trim(authorization);
  size_t space = authorization.find_first_of(" \t");
  if (space == std::string_view::npos) return nullptr;
  if (!EqualsIgnoreCase(authorization.substr(0, space), "bearer")) return nullptr;
  std::string_view token = Trim(authorization.substr(space + 1));
  if (token.empty()) return nullptr;

  const Digest digest = Sha256(token);
  // Every entry is compared, whatever matched before: the time taken tells nothing about which
  // (if any) entry the token matches. Tokens are unique, so at most one does.
  const Principal* found = nullptr;
  for (const Entry& entry : entries_) {
    const bool same = CRYPTO_memcmp(digest.data(), entry.digest.data(), digest.size()) == 0;
    found = same ? &entry.principal : found;
  }
  return found;
}

}  // namespace kiln::api
