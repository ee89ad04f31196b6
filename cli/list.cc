// kiln list: the workflows, newest first, as `argo list` shows them: those `kiln run` recorded on
// this machine, or a kiln server's (cli/client.h says when).
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "base/strings.h"
#include "cli/client.h"
#include "cli/commands.h"
#include "cli/data_dir.h"

namespace kiln::cli {

namespace {

struct ListFlags {
  std::vector<std::string> phases;  // each may be a comma-separated list
  std::string data_dir;
  int limit = 0;
  std::string continue_token;
  std::string output = "text";
  ClientFlags client;  // and -n
};

constexpr std::string_view kPhases[] = {"Pending", "Running", "Succeeded", "Failed", "Error"};

// The workflows of one page, and the token for the page after it ("" when none).
struct Page {
  std::vector<store::WorkflowRecord> workflows;
  std::string continue_token;
};

// Up to `limit` workflows (all when limit <= 0) with a phase in `phases` (any when empty),
// starting after `token`. The store filters on one phase; for several, this filters the store's
// pages here and, when a page ends in the middle of a store page, asks the store again for the
// prefix up to the last workflow shown, so the token it returns resumes right after it.
Result<Page> ListPage(store::Store& st, const std::string& namespace_,
                      const std::set<std::string>& phases, int limit, const std::string& token) {
  store::WorkflowFilter filter;
  filter.namespace_ = namespace_;
  if (phases.size() == 1) filter.phase = *phases.begin();
  filter.continue_token = token;
  const bool exact = phases.size() <= 1;  // the store's filter is the whole filter
  filter.limit = limit <= 0 ? 500 : exact ? limit : std::max(limit, 100);
  Page out;
  while (true) {
    auto page = st.ListWorkflows(filter);
    if (!page) return std::unexpected(page.error());
    for (size_t i = 0; i < page->workflows.size(); ++i) {
      store::WorkflowRecord& w = page->workflows[i];
      if (!phases.empty() && !phases.count(w.phase)) continue;
      out.workflows.push_back(std::move(w));
      if (limit <= 0 || out.workflows.size() < static_cast<size_t>(limit)) continue;
      if (i + 1 == page->workflows.size()) {
        out.continue_token = page->continue_token;
      } else {
        store::WorkflowFilter prefix = filter;
        prefix.limit = static_cast<int>(i + 1);
        auto again = st.ListWorkflows(prefix);
        if (!again) return std::unexpected(again.error());
        out.continue_token = again->continue_token;
      }
      return out;
    }
    if (page->continue_token.empty()) return out;
    filter.continue_token = page->continue_token;
  }
}

std::string PadRight(const std::string& s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

std::string OneLine(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

// Prints one page of workflows as a table or JSON. `empty` is what to say when there are none;
// `more` the command that shows the next page (printed when `continue_token` is set).
void PrintWorkflows(const std::vector<store::WorkflowRecord>& workflows,
                    const std::string& continue_token, const std::string& output,
                    const std::string& empty, const std::string& more) {
  if (output == "json") {
    nlohmann::json items = nlohmann::json::array();
    for (const store::WorkflowRecord& w : workflows) {
      nlohmann::json j = {{"uid", w.uid},
                          {"name", w.name},
                          {"namespace", w.namespace_},
                          {"phase", w.phase},
                          {"message", w.message},
                          {"createdAt", FormatTimeUtc(w.created_at)},
                          {"startedAt", FormatTimeUtc(w.started_at)},
                          {"finishedAt", FormatTimeUtc(w.finished_at)}};
      if (w.started_at != 0 && w.finished_at != 0) {
        j["durationSeconds"] = static_cast<double>(w.finished_at - w.started_at) / 1000.0;
      }
      items.push_back(std::move(j));
    }
    nlohmann::json out = {{"workflows", std::move(items)}, {"continue", continue_token}};
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  if (workflows.empty()) {
    std::printf("%s\n", empty.c_str());
    return;
  }
  size_t name_w = 4, phase_w = 5, started_w = 7;
  std::vector<std::string> started;
  for (const store::WorkflowRecord& w : workflows) {
    started.push_back(FormatTime(w.started_at));
    name_w = std::max(name_w, w.name.size());
    phase_w = std::max(phase_w, w.phase.size());
    started_w = std::max(started_w, started.back().size());
  }
  std::printf("%-*s  %-*s  %-*s  %-8s  %s\n", static_cast<int>(name_w), "NAME",
              static_cast<int>(phase_w), "PHASE", static_cast<int>(started_w), "STARTED",
              "DURATION", "MESSAGE");
  for (size_t i = 0; i < workflows.size(); ++i) {
    const store::WorkflowRecord& w = workflows[i];
    std::string line = PadRight(w.name, name_w) + "  " + PadRight(w.phase, phase_w) + "  " +
                       PadRight(started[i], started_w) + "  " +
                       PadRight(FormatDuration(w.started_at, w.finished_at), 8) + "  ";
    line += OneLine(w.message);
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::printf("%s\n", line.c_str());
  }
  if (!continue_token.empty()) {
    std::fflush(stdout);  // the hint follows the table, also when both go to one pipe
    std::fprintf(stderr, "There are more workflows: %s\n", more.c_str());
  }
}

// The server's workflows in the namespace: every page (following metadata.continue) or, with
// --limit, one page of at most that many. One phase is filtered by the server; several here.
int ListFromServer(const ListFlags& flags, const std::set<std::string>& phases,
                   ClientConfig config) {
  ServerClient client("list", std::move(config));
  std::vector<store::WorkflowRecord> workflows;
  std::string token = flags.continue_token;
  std::string next;
  while (true) {
    std::string target = client.WorkflowsPath();
    std::string query;
    auto add = [&query](const std::string& key, const std::string& value) {
      query += (query.empty() ? "?" : "&") + key + "=" + http::UrlEncode(value);
    };
    if (flags.limit > 0) add("listOptions.limit", std::to_string(flags.limit));
    if (!token.empty()) add("listOptions.continue", token);
    if (phases.size() == 1) add("phase", *phases.begin());
    auto page = client.Call("GET", target + query);
    if (!page) return client.exit_code();
    if (page->is_object() && (*page)["items"].is_array()) {
      for (const nlohmann::json& item : (*page)["items"]) {
        store::WorkflowRecord w = RecordsFromWorkflowJson(item).workflow;
        if (!phases.empty() && !phases.count(w.phase)) continue;
        workflows.push_back(std::move(w));
      }
    }
    next.clear();
    if (page->is_object() && (*page)["metadata"].is_object()) {
      const nlohmann::json& c = (*page)["metadata"]["continue"];
      if (c.is_string()) next = c.get<std::string>();
    }
    if (next.empty() || flags.limit > 0) break;
    if (next == token) {
      client.Fail("the server returned the same continue token twice (" + Quote(next) +
                  "); stopping");
      return client.exit_code();
    }
    token = next;
  }
  std::string more = "kiln list -n " + client.ns();
  for (const std::string& p : phases) more += " --phase " + p;
  more += " --limit " + std::to_string(flags.limit) + " --continue " + next;
  PrintWorkflows(
      workflows, next, flags.output,
      "No workflows found in namespace " + client.ns() + " at " + client.endpoint().url + ".",
      more);
  return 0;
}

int RunList(const ListFlags& flags) {
  std::set<std::string> phases;
  for (const std::string& list : flags.phases) {
    size_t start = 0;
    while (start <= list.size()) {
      size_t comma = std::min(list.find(',', start), list.size());
      std::string phase(Trim(std::string_view(list).substr(start, comma - start)));
      start = comma + 1;
      if (phase.empty()) continue;
      auto known = std::find(std::begin(kPhases), std::end(kPhases), phase);
      if (known == std::end(kPhases)) {
        std::vector<std::string_view> names(std::begin(kPhases), std::end(kPhases));
        std::fprintf(
            stderr,
            "kiln list: --phase %s: unknown phase%s; phases are Pending, Running, Succeeded, "
            "Failed, Error\n",
            Quote(phase).c_str(), DidYouMean(phase, names).c_str());
        return 2;
      }
      phases.insert(phase);
    }
  }
  auto server = ServerMode("list", flags.client, !flags.data_dir.empty());
  if (!server) return server.error();
  if (*server) return ListFromServer(flags, phases, std::move(**server));

  const std::string data_dir = ResolveDataDir(flags.data_dir);
  auto db = OpenRecordedStore(data_dir);
  if (!db) {
    std::fprintf(stderr, "kiln list: %s\n", db.error().ToString().c_str());
    return 1;
  }
  auto page = ListPage(**db, flags.client.namespace_, phases, flags.limit, flags.continue_token);
  if (!page) {
    std::fprintf(stderr, "kiln list: %s\n", page.error().ToString().c_str());
    return 1;
  }
  std::string more = "kiln list";
  if (!flags.data_dir.empty()) more += " --data-dir " + flags.data_dir;
  if (!flags.client.namespace_.empty()) more += " -n " + flags.client.namespace_;
  for (const std::string& p : phases) more += " --phase " + p;
  more += " --limit " + std::to_string(flags.limit) + " --continue " + page->continue_token;
  PrintWorkflows(page->workflows, page->continue_token, flags.output,
                 "No workflows found in " + DatabasePath(data_dir) + ".", more);
  return 0;
}

}  // namespace

void RegisterList(CLI::App& app) {
  auto flags = std::make_shared<ListFlags>();
  CLI::App* cmd = app.add_subcommand(
      "list",
      "List the workflows, newest first: a kiln server's when one is configured (--server, "
      "$KILN_SERVER or ~/.config/kiln/config.yaml), else those `kiln run` recorded here");
  cmd->add_option(
      "--phase", flags->phases,
      "Only workflows in this phase: Pending, Running, Succeeded, Failed, Error (repeatable or a "
      "comma-separated list)");
  cmd->add_option("-n,--namespace", flags->client.namespace_,
                  "Only workflows in this namespace (with a server: default \"default\")");
  cmd->add_option("--limit", flags->limit,
                  "At most this many; prints the --continue token of the next page")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--continue", flags->continue_token,
                  "The token printed by the previous --limit page");
  cmd->add_option("--data-dir", flags->data_dir,
                  "Where `kiln run` recorded them (default $KILN_DATA_DIR or ~/.local/share/kiln)");
  cmd->add_option("-o,--output", flags->output, "Output format")
      ->check(CLI::IsMember({"text", "json"}));
  AddClientFlags(*cmd, flags->client);
  cmd->callback([flags] { SetExitCode(RunList(*flags)); });
}

}  // namespace kiln::cli
