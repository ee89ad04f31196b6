#include "api/auth.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

namespace kiln::api {
namespace {

constexpr char kAliceToken[] = "alice-0123456789abcdef";
constexpr char kBotToken[] = "0123456789abcdef0123";
constexpr char kViewerToken[] = "viewer-fedcba9876543210";

constexpr char kMapForm[] = R"(tokens:
  - token: alice-0123456789abcdef
    subject: alice
    namespaces: [ml, data]
    role: write
  - token: "0123456789abcdef0123"
    subject: ci-bot
    namespaces: ["*"]
    role: admin
  - token: viewer-fedcba9876543210
    subject: viewer
    namespaces:
      - ml
    role: read
)";

constexpr char kListForm[] = R"(# The list alone.
- token: alice-0123456789abcdef
  subject: alice
  namespaces: [ml, data]
  role: write
- {token: "0123456789abcdef0123", subject: ci-bot, namespaces: ["*"], role: admin}
- token: viewer-fedcba9876543210
  subject: viewer
  namespaces: [ml]
  role: read
)";

// The error message of parsing `yaml`; fails the test when it parses.
std::string ParseError(const std::string& yaml) {
  Result<TokenAuthenticator> auth = TokenAuthenticator::Parse("tokens.yaml", yaml);
  REQUIRE_FALSE(auth.has_value());
  CHECK(auth.error().code() == Code::kInvalidArgument);
  CHECK(auth.error().where().empty());
  return auth.error().message();
}

void CheckGoodFile(const TokenAuthenticator& auth) {
  REQUIRE(auth.size() == 3);

  const Principal* alice = auth.Authenticate(std::string("Bearer ") + kAliceToken);
  REQUIRE(alice != nullptr);
  CHECK(alice->subject == "alice");
  CHECK(alice->namespaces == std::vector<std::string>{"ml", "data"});
  CHECK(alice->role == Role::kWrite);

  const Principal* bot = auth.Authenticate(std::string("Bearer ") + kBotToken);
  REQUIRE(bot != nullptr);
  CHECK(bot->subject == "ci-bot");
  CHECK(bot->namespaces == std::vector<std::string>{"*"});
  CHECK(bot->role == Role::kAdmin);

  const Principal* viewer = auth.Authenticate(std::string("Bearer ") + kViewerToken);
  REQUIRE(viewer != nullptr);
  CHECK(viewer->subject == "viewer");
  CHECK(viewer->namespaces == std::vector<std::string>{"ml"});
  CHECK(viewer->role == Role::kRead);
}

TEST_CASE("auth: a tokens file as a map with key tokens", "[api][auth]") {
  Result<TokenAuthenticator> auth = TokenAuthenticator::Parse("tokens.yaml", kMapForm);
  REQUIRE(auth.has_value());
  CheckGoodFile(*auth);
}

TEST_CASE("auth: a tokens file as a top-level list", "[api][auth]") {
  Result<TokenAuthenticator> auth = TokenAuthenticator::Parse("tokens.yaml", kListForm);
  REQUIRE(auth.has_value());
  CheckGoodFile(*auth);
}

TEST_CASE("auth: the Bearer scheme is case-insensitive and spaces around the token are ignored",
          "[api][auth]") {
  Result<TokenAuthenticator> auth = TokenAuthenticator::Parse("tokens.yaml", kMapForm);
  REQUIRE(auth.has_value());
  for (std::string header : {"bearer ", "BEARER ", "BeArEr ", "Bearer   ", "  Bearer\t"}) {
    INFO(header);
    const Principal* p = auth->Authenticate(header + kAliceToken + " ");
    REQUIRE(p != nullptr);
    CHECK(p->subject == "alice");
  }
}

TEST_CASE("auth: a wrong scheme, a missing token or an unknown token authenticate nobody",
          "[api][auth]") {
  Result<TokenAuthenticator> auth = TokenAuthenticator::Parse("tokens.yaml", kMapForm);
  REQUIRE(auth.has_value());
  const std::string alice = kAliceToken;
  CHECK(auth->Authenticate("") == nullptr);
  CHECK(auth->Authenticate("Bearer") == nullptr);
  CHECK(auth->Authenticate("Bearer ") == nullptr);
  CHECK(auth->Authenticate("Bearer    ") == nullptr);
  CHECK(auth->Authenticate(alice) == nullptr);                     // no scheme
  CHECK(auth->Authenticate("Basic " + alice) == nullptr);          // another scheme
  CHECK(auth->Authenticate("Bearerx " + alice) == nullptr);
  CHECK(auth->Authenticate("Token " + alice) == nullptr);
  CHECK(auth->Authenticate("Bearer " + alice + "x") == nullptr);   // longer
  CHECK(auth->Authenticate("Bearer " + alice.substr(0, 21)) == nullptr);  // a prefix
  CHECK(auth->Authenticate("Bearer ALICE-0123456789ABCDEF") == nullptr);  // tokens are case-sensitive
  CHECK(auth->Authenticate("Bearer " + alice + " " + alice) == nullptr);
  CHECK(auth->Authenticate("Bearer not-a-token-at-all-000000") == nullptr);
}

TEST_CASE("auth: the namespace star allows every namespace and a list only its own", "[api][auth]") {
  Principal all{"bot", {"*"}, Role::kRead};
  CHECK(all.AllowsNamespace("ml"));
  CHECK(all.AllowsNamespace("anything"));
  CHECK(all.AllowsNamespace(""));  // across all namespaces

  Principal some{"alice", {"ml", "data"}, Role::kAdmin};
  CHECK(some.AllowsNamespace("ml"));
  CHECK(some.AllowsNamespace("data"));
  CHECK_FALSE(some.AllowsNamespace("prod"));
  CHECK_FALSE(some.AllowsNamespace("m"));
  CHECK_FALSE(some.AllowsNamespace("*"));  // "*" in a request is not a wildcard
  CHECK_FALSE(some.AllowsNamespace(""));   // listing across namespaces needs "*"
}

TEST_CASE("auth: roles are ordered, admin over write over read", "[api][auth]") {
  CHECK(Role::kRead < Role::kWrite);
  CHECK(Role::kWrite < Role::kAdmin);
  CHECK(RoleName(Role::kRead) == "read");
  CHECK(RoleName(Role::kWrite) == "write");
  CHECK(RoleName(Role::kAdmin) == "admin");

  Principal reader{"r", {"ml"}, Role::kRead};
  Principal writer{"w", {"ml"}, Role::kWrite};
  Principal admin{"a", {"ml"}, Role::kAdmin};
  CHECK(reader.Allows("ml", Role::kRead));
  CHECK_FALSE(reader.Allows("ml", Role::kWrite));
  CHECK_FALSE(reader.Allows("ml", Role::kAdmin));
  CHECK(writer.Allows("ml", Role::kRead));
  CHECK(writer.Allows("ml", Role::kWrite));
  CHECK_FALSE(writer.Allows("ml", Role::kAdmin));
  CHECK(admin.Allows("ml", Role::kRead));
  CHECK(admin.Allows("ml", Role::kWrite));
  CHECK(admin.Allows("ml", Role::kAdmin));
  // The role never widens the namespaces.
  CHECK_FALSE(admin.Allows("prod", Role::kRead));
}

TEST_CASE("auth: a role that is not read, write or admin", "[api][auth]") {
  std::string message = ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: alice
    namespaces: [ml]
    role: read
  - token: bbbbbbbbbbbbbbbb
    subject: bob
    namespaces: [ml]
    role: writer
)");
  CHECK(message == R"(tokens.yaml:9:11: tokens[1].role: "writer" is not one of read, write, admin)");
}

TEST_CASE("auth: unknown fields are errors, with a suggestion", "[api][auth]") {
  CHECK(ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: alice
    namespace: [ml]
    role: read
)") == "tokens.yaml:2:5: tokens[0].namespaces: required field missing; list the namespaces this "
       "token may use, or [\"*\"] for all\n"
       "tokens.yaml:4:5: tokens[0].namespace: unknown field (did you mean \"namespaces\"?)");

  CHECK(ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: alice
    namespaces: [ml]
    role: read
    expires: 2026-01-01
)") == "tokens.yaml:6:5: tokens[0].expires: unknown field");

  CHECK(ParseError(R"(token:
  - token: aaaaaaaaaaaaaaaa
    subject: alice
    namespaces: [ml]
    role: read
)") == "tokens.yaml:1:1: token: unknown field (did you mean \"tokens\"?)\n"
       "tokens.yaml:1:1: tokens: required field missing; it holds the list of tokens");
}

TEST_CASE("auth: missing and empty fields", "[api][auth]") {
  CHECK(ParseError(R"(tokens:
  - subject: alice
    namespaces: [ml]
    role: read
)") == "tokens.yaml:2:5: tokens[0].token: required field missing; every entry needs a secret "
       "token (make one with `openssl rand -hex 32`)");

  CHECK(ParseError(R"(tokens:
  - token: ""
    subject: alice
    namespaces: [ml]
    role: read
)") == "tokens.yaml:2:12: tokens[0].token: empty; every entry needs a secret token (make one "
       "with `openssl rand -hex 32`)");

  CHECK(ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: ""
    namespaces: [ml]
    role: read
)") == "tokens.yaml:3:14: tokens[0].subject: empty; name the person or service this token "
       "stands for");

  CHECK(ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    namespaces: [ml]
    subject:
    role: read
)") == "tokens.yaml:4:13: tokens[0].subject: empty; name the person or service this token "
       "stands for");

  CHECK(ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: alice
    namespaces: [ml]
)") == "tokens.yaml:2:5: tokens[0].role: required field missing; one of read, write, admin");

  CHECK(ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: [alice]
    namespaces: [ml]
    role: {name: read}
)") == "tokens.yaml:3:14: tokens[0].subject: expected a string, found a list\n"
       "tokens.yaml:5:11: tokens[0].role: expected one of read, write, admin, found a map");
}

TEST_CASE("auth: namespaces must be a non-empty list of namespace names or the star", "[api][auth]") {
  CHECK(ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: alice
    namespaces: []
    role: read
)") == "tokens.yaml:4:17: tokens[0].namespaces: empty list; list the namespaces this token may "
       "use, or [\"*\"] for all");

  CHECK(ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: alice
    namespaces: "*"
    role: read
)") == "tokens.yaml:4:17: tokens[0].namespaces: expected a list, found a string; list the "
       "namespaces this token may use, or [\"*\"] for all");

  CHECK(ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: alice
    namespaces: [ml, ML_Prod, {a: b}]
    role: read
)") == "tokens.yaml:4:22: tokens[0].namespaces[1]: invalid name \"ML_Prod\": a lowercase RFC "
       "1123 label must consist of lower case alphanumeric characters or '-', and must start and "
       "end with an alphanumeric character (e.g. 'my-name', or '123-abc')\n"
       "tokens.yaml:4:31: tokens[0].namespaces[2]: expected a namespace name or \"*\", found a map");
}

TEST_CASE("auth: short tokens and tokens an Authorization header cannot carry", "[api][auth]") {
  std::string message = ParseError(R"(tokens:
  - token: s3cr3t-short
    subject: alice
    namespaces: [ml]
    role: read
)");
  CHECK(message ==
        "tokens.yaml:2:12: tokens[0].token: shorter than 16 characters: a short token can be "
        "guessed; make one with `openssl rand -hex 32`");
  CHECK(message.find("s3cr3t") == std::string::npos);

  message = ParseError(R"(tokens:
  - token: "s3cr3t with spaces inside"
    subject: alice
    namespaces: [ml]
    role: read
  - token: "s3cr3t-with-a-newline\n"
    subject: bob
    namespaces: [ml]
    role: read
)");
  CHECK(message ==
        "tokens.yaml:2:12: tokens[0].token: contains whitespace or control characters, which an "
        "Authorization header cannot carry\n"
        "tokens.yaml:6:12: tokens[1].token: contains whitespace or control characters, which an "
        "Authorization header cannot carry");
  CHECK(message.find("s3cr3t") == std::string::npos);

  // Exactly 16 characters is enough.
  Result<TokenAuthenticator> auth = TokenAuthenticator::Parse("tokens.yaml", R"(tokens:
  - token: 0123456789abcdef
    subject: alice
    namespaces: [ml]
    role: read
)");
  REQUIRE(auth.has_value());
  CHECK(auth->Authenticate("Bearer 0123456789abcdef") != nullptr);
}

TEST_CASE("auth: the same token twice is an error that names the first entry, not the token",
          "[api][auth]") {
  std::string message = ParseError(R"(tokens:
  - token: s3cr3t-0123456789abcdef
    subject: alice
    namespaces: [ml]
    role: read
  - token: other-0123456789abcdef
    subject: bob
    namespaces: [ml]
    role: read
  - token: 's3cr3t-0123456789abcdef'
    subject: carol
    namespaces: [ml]
    role: admin
)");
  CHECK(message ==
        "tokens.yaml:10:12: tokens[2].token: the same token as tokens[0] (subject \"alice\"); "
        "each token must be unique");
  CHECK(message.find("s3cr3t") == std::string::npos);
}

TEST_CASE("auth: the shape of the file", "[api][auth]") {
  CHECK(ParseError("") ==
        "tokens.yaml: the file lists no tokens; add entries of token, subject, namespaces and role");
  CHECK(ParseError("# nothing yet\n") ==
        "tokens.yaml: the file lists no tokens; add entries of token, subject, namespaces and role");
  CHECK(ParseError("tokens: []\n") ==
        "tokens.yaml:1:9: tokens: the file lists no tokens; add entries of token, subject, "
        "namespaces and role");
  CHECK(ParseError("tokens:\n") ==
        "tokens.yaml:1:8: tokens: the file lists no tokens; add entries of token, subject, "
        "namespaces and role");
  CHECK(ParseError("just a string\n") ==
        "tokens.yaml:1:1: expected a list of tokens, or a map whose field tokens holds one; found "
        "a string");
  CHECK(ParseError("tokens: {alice: x}\n") ==
        "tokens.yaml:1:9: tokens: expected a list of tokens, found a map");
  CHECK(ParseError("- aaaaaaaaaaaaaaaa\n") ==
        "tokens.yaml:1:3: tokens[0]: expected a map of token, subject, namespaces and role, found "
        "a string");
  CHECK(ParseError(R"(- token: aaaaaaaaaaaaaaaa
  subject: alice
  namespaces: [ml]
  role: read
---
- token: bbbbbbbbbbbbbbbb
)") == "tokens.yaml:6:1: more than one YAML document; list every token in the first");
}

TEST_CASE("auth: YAML syntax errors carry their position", "[api][auth]") {
  std::string message = ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: alice
   namespaces: [ml]
)");
  CHECK(message.starts_with("tokens.yaml:4:4: YAML syntax error: "));
}

TEST_CASE("auth: every problem of the file is reported at once, in file order", "[api][auth]") {
  std::string message = ParseError(R"(tokens:
  - token: aaaaaaaaaaaaaaaa
    subject: alice
    namespaces: [ml]
    role: reader
  - token: short
    subject: bob
    namespaces: [ml]
    role: write
  - token: cccccccccccccccc
    subject: carol
    namespaces: [Data]
    role: admin
)");
  CHECK(message ==
        "tokens.yaml:5:11: tokens[0].role: \"reader\" is not one of read, write, admin\n"
        "tokens.yaml:6:12: tokens[1].token: shorter than 16 characters: a short token can be "
        "guessed; make one with `openssl rand -hex 32`\n"
        "tokens.yaml:12:18: tokens[2].namespaces[0]: invalid name \"Data\": a lowercase RFC 1123 "
        "label must consist of lower case alphanumeric characters or '-', and must start and end "
        "with an alphanumeric character (e.g. 'my-name', or '123-abc')");
}

TEST_CASE("auth: LoadFile reads the file and names it in errors", "[api][auth]") {
  std::filesystem::path dir = std::filesystem::temp_directory_path() /
                              ("kiln-auth-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string good = (dir / "tokens.yaml").string();
  const std::string bad = (dir / "bad.yaml").string();
  {
    std::ofstream(good) << kMapForm;
    std::ofstream(bad) << "tokens:\n  - token: aaaaaaaaaaaaaaaa\n    subject: x\n    role: read\n";
  }

  Result<TokenAuthenticator> auth = TokenAuthenticator::LoadFile(good);
  REQUIRE(auth.has_value());
  CheckGoodFile(*auth);

  Result<TokenAuthenticator> invalid = TokenAuthenticator::LoadFile(bad);
  REQUIRE_FALSE(invalid.has_value());
  CHECK(invalid.error().code() == Code::kInvalidArgument);
  CHECK(invalid.error().ToString() ==
        bad + ":2:5: tokens[0].namespaces: required field missing; list the namespaces this "
              "token may use, or [\"*\"] for all");

  const std::string missing = (dir / "missing.yaml").string();
  Result<TokenAuthenticator> absent = TokenAuthenticator::LoadFile(missing);
  REQUIRE_FALSE(absent.has_value());
  CHECK(absent.error().code() == Code::kNotFound);
  CHECK(absent.error().ToString() ==
        missing + ": cannot open the tokens file: No such file or directory");

  Result<TokenAuthenticator> directory = TokenAuthenticator::LoadFile(dir.string());
  REQUIRE_FALSE(directory.has_value());
  CHECK(directory.error().code() == Code::kNotFound);
  CHECK(directory.error().ToString() == dir.string() + ": cannot read the tokens file: Is a directory");

  std::filesystem::remove_all(dir);
}

TEST_CASE("auth: the principal stays valid when the authenticator is moved", "[api][auth]") {
  Result<TokenAuthenticator> auth = TokenAuthenticator::Parse("tokens.yaml", kMapForm);
  REQUIRE(auth.has_value());
  const Principal* before = auth->Authenticate(std::string("Bearer ") + kBotToken);
  TokenAuthenticator moved = std::move(*auth);
  CHECK(moved.Authenticate(std::string("Bearer ") + kBotToken) == before);
  CHECK(before->subject == "ci-bot");
}

}  // namespace
}  // namespace kiln::api
