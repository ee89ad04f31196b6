// kiln stop, terminate, suspend, retry, resubmit, resume and delete: one request each to a kiln server
// (PUT /api/v1/workflows/{ns}/{name}/<verb>, DELETE for delete), for every NAME given.
//
// `kiln resume` already exists for the embedded mode (cli/run.cc: continue a `kiln run` that was
// killed). When it does, the server's resume joins it: with a server configured (and no
// --data-dir) the request goes to the server once the arguments are parsed, and the embedded
// resume never runs (CLI::RuntimeError carries the exit code to main).
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/commands.h"

namespace kiln::cli {

namespace {

struct Action {
  const char* verb;
  const char* past;  // "workflow NAME <past>"
  const char* help;
};

constexpr Action kActions[] = {
    {"stop", "stopped",
     "Stop workflows on a kiln server: their running steps are stopped, then the exit handler "
     "runs"},
    {"terminate", "terminated",
     "Terminate workflows on a kiln server: everything stops at once, the exit handler does not "
     "run"},
    {"suspend", "suspended",
     "Suspend workflows on a kiln server: running steps go on, no new step starts until `kiln "
     "resume`"},
    {"retry", "retried",
     "Run failed workflows on a kiln server again from their failed steps; succeeded steps keep "
     "their results"},
    {"resubmit", "resubmitted",
     "Submit workflows on a kiln server again, as new workflows with the same manifest and "
     "parameters"},
    {"resume", "resumed",
     "Resume suspended workflows on a kiln server: their suspend nodes waiting for a resume "
     "succeed"},
    {"delete", "deleted",
     "Delete workflows and their records from a kiln server; a running one is terminated first"},
};

struct ActionFlags {
  std::vector<std::string> workflows;
  std::string message;  // stop only
  // retry only (Argo's WorkflowRetryRequest)
  bool restart_successful = false;
  std::string node_field_selector;
  std::vector<std::string> parameters;
  ClientFlags client;
};

int RunAction(const Action& action, const ActionFlags& flags) {
  const std::string verb = action.verb;
  auto config = ResolveClient(flags.client);
  if (!config) {
    std::fprintf(stderr, "kiln %s: %s\n", action.verb, config.error().ToString().c_str());
    return kExitFailure;
  }
  if (!*config) {
    std::fprintf(stderr,
                 "kiln %s: no kiln server configured: pass --server URL or set KILN_SERVER "
                 "(a workflow that `kiln run` runs stops with Ctrl-C and resumes with `kiln "
                 "resume`)\n",
                 action.verb);
    return kExitUsage;
  }
  ServerClient client(verb, std::move(**config));
  int exit_code = 0;
  for (const std::string& name : flags.workflows) {
    std::optional<nlohmann::json> answer;
    if (verb == "delete") {
      answer = client.Call("DELETE", client.WorkflowsPath(name));
    } else {
      // The request bodies of Argo's API (WorkflowStopRequest, ...) name the workflow too.
      nlohmann::json body = {{"name", name}, {"namespace", client.ns()}};
      if (verb == "stop" && !flags.message.empty()) body["message"] = flags.message;
      if (verb == "retry") {
        if (flags.restart_successful) body["restartSuccessful"] = true;
        if (!flags.node_field_selector.empty()) body["nodeFieldSelector"] = flags.node_field_selector;
        if (!flags.parameters.empty()) body["parameters"] = flags.parameters;
      }
      answer = client.Call("PUT", client.WorkflowsPath(name) + "/" + verb, body.dump());
    }
    if (!answer) {
      exit_code = client.exit_code();
      continue;
    }
    std::string line = "workflow " + name + " " + action.past;
    if (verb == "resubmit" && answer->is_object() && answer->contains("metadata") &&
        (*answer)["metadata"].is_object() && (*answer)["metadata"].contains("name") &&
        (*answer)["metadata"]["name"].is_string()) {
      line += " as " + (*answer)["metadata"]["name"].get<std::string>();
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  return exit_code;
}

}  // namespace

// Adds the server's resume to the embedded `kiln resume` subcommand `cmd`.
void JoinResume(const Action& action, CLI::App& cmd) {
  auto flags = std::make_shared<ActionFlags>();
  cmd.description(cmd.get_description() +
                  ". With a kiln server (--server, $KILN_SERVER or ~/.config/kiln/config.yaml; "
                  "not with --data-dir): resume the server's suspended workflow, whose suspend "
                  "nodes waiting for a resume succeed");
  AddClientFlags(cmd, flags->client);
  CLI::App* self = &cmd;
  cmd.parse_complete_callback([&action, flags, self] {
    auto given = [self](const std::string& name) {
      const CLI::Option* option = self->get_option_no_throw(name);
      return option != nullptr && option->count() > 0 ? option->as<std::string>() : "";
    };
    const bool data_dir_given = !given("--data-dir").empty();
    flags->client.namespace_ = given("--namespace");
    auto server = ServerMode(action.verb, flags->client, data_dir_given);
    if (!server) throw CLI::RuntimeError(server.error());
    if (!*server) return;  // the embedded resume runs
    flags->workflows = {given("workflow")};
    throw CLI::RuntimeError(RunAction(action, *flags));
  });
}

void RegisterWorkflowActions(CLI::App& app) {
  for (const Action& action : kActions) {
    auto existing =
        app.get_subcommands([&action](CLI::App* sub) { return sub->get_name() == action.verb; });
    if (!existing.empty()) {
      JoinResume(action, *existing.front());
      continue;
    }
    auto flags = std::make_shared<ActionFlags>();
    CLI::App* cmd = app.add_subcommand(action.verb, action.help);
    cmd->add_option("workflows", flags->workflows, "The workflows' names")->required();
    if (std::string(action.verb) == "stop") {
      cmd->add_option("--message", flags->message, "Why, recorded as the workflow's message");
    }
    if (std::string(action.verb) == "retry") {
      cmd->add_flag("--restart-successful", flags->restart_successful,
                    "Also run again the succeeded nodes that --node-field-selector matches");
      cmd->add_option("--node-field-selector", flags->node_field_selector,
                      "Which succeeded nodes --restart-successful runs again, e.g. "
                      "displayName=train,templateName=fit (fields: id, name, displayName, "
                      "templateName, phase, type, inputs.parameters.NAME.value; = == !=)");
      cmd->add_option("-p,--parameter", flags->parameters,
                      "Override a workflow parameter for the retried run: -p name=value "
                      "(repeatable)");
    }
    cmd->add_option("-n,--namespace", flags->client.namespace_,
                    "The workflows' namespace (default: namespace: in the config file, else "
                    "\"default\")");
    AddClientFlags(*cmd, flags->client);
    cmd->callback([&action, flags] { SetExitCode(RunAction(action, *flags)); });
  }
}

}  // namespace kiln::cli
