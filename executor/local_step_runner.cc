#include "executor/local_step_runner.h"

#include <openssl/sha.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/strings.h"
#include "dag/quantity.h"

namespace kiln::executor {

namespace fs = std::filesystem;

namespace {

int64_t QuantityOr0(const dag::Json& j, double scale) {
  if (!j.is_string() && !j.is_number()) return 0;
  std::string text = j.is_string() ? j.get<std::string>() : j.dump();
  auto q = dag::ParseQuantity(text);
  if (!q) return 0;
  return static_cast<int64_t>(q->value * scale + 0.5);
}

// Requests, or limits where no request is given (as Kubernetes defaults requests to limits).
ResourceRequest RequestOf(const dag::Json& container) {
  ResourceRequest r;
  if (!container.is_object() || !container.contains("resources")) return r;
  const dag::Json& res = container["resources"];
  auto pick = [&](const char* name) -> dag::Json {
    if (res.contains("requests") && res["requests"].contains(name)) return res["requests"][name];
    if (res.contains("limits") && res["limits"].contains(name)) return res["limits"][name];
    return nullptr;
  };
  r.cpu_millis = QuantityOr0(pick("cpu"), 1000.0);
  r.memory_bytes = QuantityOr0(pick("memory"), 1.0);
  r.gpus = static_cast<int>(QuantityOr0(pick("nvidia.com/gpu"), 1.0));
  return r;
}

std::string ReadFile(const std::string& path, bool* ok) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *ok = false;
    return {};
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  *ok = true;
  return buf.str();
}

std::string TrimTrailingNewlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

std::string LocalStepRunner::HostPath(const std::string& dir, const std::string& path) const {
  if (!sandboxed_) return path;
  if (path == "/tmp") return dir + "/tmp";
  if (path.starts_with("/tmp/")) return dir + "/tmp" + path.substr(4);
  return dir + "/out" + path;
}

Result<scheduler::ArtifactRef> LocalStepRunner::StoreOutput(const scheduler::LaunchStep& step,
                                                            const dag::Artifact& a,
                                                            const std::string& host_path) {
  auto fail = [&](const Error& e) {
    return MakeError(e.code(), "output artifact " + Quote(a.name) + ": " + e.message());
  };
  auto ref = artifacts_.Put(host_path);
  if (!ref) return fail(ref.error());
  auto key = step.output_artifact_keys.find(a.name);
  if (key == step.output_artifact_keys.end()) return ref;
  auto archive = ArchiveOf(a.archive);
  if (!archive) return fail(archive.error());
  if (auto ok = artifacts_.PutKey(key->second, host_path, *archive); !ok) return fail(ok.error());
  ref->key = key->second;
  return ref;
}

Result<void> LocalStepRunner::PlaceInputs(const scheduler::LaunchStep& step, const std::string& dir,
                                          std::optional<Sandbox>* sandbox) {
  for (const scheduler::InputArtifact& a : step.input_artifacts) {
    if (a.path.empty()) continue;
    std::string host = sandboxed_ && !(a.path == "/tmp" || a.path.starts_with("/tmp/"))
                           ? dir + "/in" + a.path
                           : HostPath(dir, a.path);
    if (auto ok = artifacts_.Get(a.ref, host); !ok) {
      // An optional input whose key holds nothing is left out, as Argo does.
      const bool optional = step.tmpl && std::any_of(step.tmpl->inputs.artifacts.begin(),
                                                     step.tmpl->inputs.artifacts.end(),
                                                     [&](const dag::Artifact& x) { return x.name == a.name && x.optional; });
      if (optional && !a.ref.key.empty() && ok.error().code() == Code::kNotFound) continue;
      return MakeError(ok.error().code(), "input artifact " + Quote(a.name) + ": " + ok.error().message());
    }
    if (sandboxed_ && !(a.path == "/tmp" || a.path.starts_with("/tmp/"))) {
      if (!*sandbox) sandbox->emplace();
      (*sandbox)->binds.push_back(Bind{host, a.path, true});
    }
  }
  return {};
}

Result<std::vector<Bind>> LocalStepRunner::ResolveMounts(const scheduler::LaunchStep& step) const {
  std::vector<Bind> out;
  const dag::Json& c = step.container;
  if (!c.contains("volumeMounts") || !c["volumeMounts"].is_array() || c["volumeMounts"].empty()) return out;
  if (!sandboxed_) {
    return MakeError(Code::kFailedPrecondition,
                     "volumeMounts need the sandbox (bubblewrap) to place volumes at their mountPath; "
                     "run without --no-sandbox on a machine where bwrap works");
  }
  for (const dag::Json& m : c["volumeMounts"]) {
    const std::string name = m.value("name", "");
    const std::string mount_path = m.value("mountPath", "");
    const dag::Json* volume = nullptr;
    for (const dag::Json& v : step.volumes) {
      if (v.value("name", "") == name) volume = &v;
    }
    if (volume == nullptr) {
      return MakeError(Code::kInvalidArgument, "volumeMount " + Quote(name) +
                                                   ": no volume of that name in spec.volumes, the template's "
                                                   "volumes or spec.volumeClaimTemplates");
    }
    std::string host;
    if (volume->contains("emptyDir") || volume->value("kiln.dev/per-workflow", false)) {
      host = options_.work_dir + "/volumes/" + name;
    } else if (volume->contains("persistentVolumeClaim")) {
      std::string claim = (*volume)["persistentVolumeClaim"].value("claimName", "");
      if (claim.empty() || claim.find('/') != std::string::npos || claim == "..") {
        return MakeError(Code::kInvalidArgument, "volume " + Quote(name) + ": persistentVolumeClaim needs a claimName");
      }
      host = (options_.volume_dir.empty() ? options_.work_dir + "/claims" : options_.volume_dir) + "/" + claim;
    } else if (volume->contains("hostPath")) {
      host = (*volume)["hostPath"].value("path", "");
    } else {
      std::string kind = "that";
      for (auto it = volume->begin(); it != volume->end(); ++it) {
        if (it.key() != "name") kind = it.key();
      }
      return MakeError(Code::kFailedPrecondition,
                       "volume " + Quote(name) + ": " + kind +
                           " volumes need Kubernetes; the local executor mounts emptyDir, "
                           "persistentVolumeClaim (a directory under the data dir) and hostPath volumes");
    }
    std::string sub = m.value("subPath", "");
    if (sub.find("..") != std::string::npos) {
      return MakeError(Code::kInvalidArgument, "volumeMount " + Quote(name) + ": subPath must not contain '..'");
    }
    if (!sub.empty()) host += "/" + sub;
    if (mount_path.empty() || mount_path[0] != '/') {
      return MakeError(Code::kInvalidArgument, "volumeMount " + Quote(name) + ": mountPath must be absolute");
    }
    out.push_back(Bind{host, mount_path, m.value("readOnly", false)});
  }
  return out;
}

Result<void> LocalStepRunner::MountVolumes(const scheduler::LaunchStep& step, std::optional<Sandbox>* sandbox) {
  auto mounts = ResolveMounts(step);
  if (!mounts) return std::unexpected(mounts.error());
  std::error_code ec;
  for (const Bind& b : *mounts) {
    if (!fs::exists(b.host_path, ec)) fs::create_directories(b.host_path, ec);
    if (!*sandbox) sandbox->emplace();
    (*sandbox)->binds.push_back(b);
  }
  return {};
}

std::string LocalStepRunner::OutputHostPath(const scheduler::LaunchStep& step, const std::string& dir,
                                            const std::string& path) const {
  if (auto mounts = ResolveMounts(step)) {
    for (const Bind& b : *mounts) {
      const std::string& m = b.sandbox_path;
      if (path == m) return b.host_path;
      std::string prefix = m.back() == '/' ? m : m + "/";
      if (path.starts_with(prefix)) return b.host_path + "/" + path.substr(prefix.size());
    }
  }
  return HostPath(dir, path);
}

LocalStepRunner::LocalStepRunner(boost::asio::io_context& io, LocalOptions options,
                                 ArtifactRepository& artifacts)
    : io_(io),
      options_(std::move(options)),
      artifacts_(artifacts),
      runner_(io),
      pool_(
          [&] {
            Capacity c = DetectCapacity();
            if (options_.capacity.cpu_millis > 0) c.cpu_millis = options_.capacity.cpu_millis;
            if (options_.capacity.memory_bytes > 0) c.memory_bytes = options_.capacity.memory_bytes;
            return c;
          }(),
          options_.gpus) {
  const BubblewrapStatus& bwrap = DetectBubblewrap();
  sandboxed_ = options_.sandbox && bwrap.available;
  if (options_.sandbox && !bwrap.available) sandbox_warning_ = bwrap.warning;
}

std::string LocalStepRunner::StepDir(const std::string& node) const {
  // Node ids hold any character an item has; name the directory by a digest of the id.
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(node.data()), node.size(), digest);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (int i = 0; i < 8; ++i) {
    hex += kHex[digest[i] >> 4];
    hex += kHex[digest[i] & 15];
  }
  return options_.work_dir + "/steps/" + hex;
}

std::string LocalStepRunner::LogPath(const std::string& node) const {
  return StepDir(node) + "/log";
}

void LocalStepRunner::Launch(const scheduler::LaunchStep& step,
                             std::function<void(scheduler::Event)> report) {
  ResourceRequest request = RequestOf(step.container);
  auto fits = pool_.CheckFits(request);
  if (step.resource || !fits) {
    scheduler::StepFinished f;
    f.node = step.node;
    f.error = true;
    f.exit_code = -1;
    f.message = step.resource ? "a resource template acts on a Kubernetes cluster's API: run the workflow with "
                                "kiln run --executor kubernetes (or kiln server --executor kubernetes)"
                              : fits.error().message();
    boost::asio::post(io_, [report, f] { report(f); });
    return;
  }
  waiting_.push_back(Pending{step, request, std::move(report)});
  Admit();
}

void LocalStepRunner::Admit() {
  // First come, first served among the steps that fit now.
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    std::optional<Grant> grant = pool_.TryAcquire(it->request);
    if (!grant) {
      ++it;
      continue;
    }
    Pending p = std::move(*it);
    it = waiting_.erase(it);
    Run(std::move(p), std::move(*grant));
  }
}

void LocalStepRunner::Run(Pending p, Grant grant) {
  const scheduler::LaunchStep& step = p.step;
  const dag::Json& c = step.container;
  std::string dir = StepDir(step.node);
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir + "/tmp", ec);

  ProcessSpec spec;
  if (c.contains("command") && c["command"].is_array()) {
    for (const auto& a : c["command"])
      spec.argv.push_back(a.is_string() ? a.get<std::string>() : a.dump());
  }
  if (!step.script_source.empty() || (step.tmpl && step.tmpl->type == dag::TemplateType::kScript)) {
    // Argo writes the script to a file and appends its path to the command.
    std::string script = dir + "/script";
    std::ofstream(script) << step.script_source;
    fs::permissions(script, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read,
                    ec);
    spec.argv.push_back(sandboxed_ ? "/argo/staging/script" : script);
    if (sandboxed_)
      spec.sandbox.emplace().binds.push_back(Bind{script, "/argo/staging/script", true});
  }
  if (c.contains("args") && c["args"].is_array()) {
    for (const auto& a : c["args"])
      spec.argv.push_back(a.is_string() ? a.get<std::string>() : a.dump());
  }
  if (spec.argv.empty()) {
    // No command: a container would run its image's entrypoint, which a host process cannot know.
    scheduler::StepFinished f;
    f.node = step.node;
    f.error = true;
    f.exit_code = -1;
    f.message =
        "the container has no command; kiln runs commands on the host and cannot use the image's "
        "entrypoint";
    pool_.Release(grant);
    auto report = p.report;
    boost::asio::post(io_, [report, f] { report(f); });
    return;
  }
  const char* path_env = std::getenv("PATH");
  spec.env["PATH"] = path_env ? path_env : "/usr/local/bin:/usr/bin:/bin";
  spec.env["HOME"] = sandboxed_ ? "/tmp" : dir + "/tmp";
  spec.env["LANG"] = "C.UTF-8";
  if (c.contains("env") && c["env"].is_array()) {
    for (const auto& e : c["env"]) {
      if (e.contains("name") && e.contains("value") && e["value"].is_string()) {
        spec.env[e["name"].get<std::string>()] = e["value"].get<std::string>();
      }
    }
  }
  std::string cuda = grant.CudaVisibleDevices();
  spec.env["CUDA_VISIBLE_DEVICES"] = cuda;  // "" hides every GPU from a step that asked for none
  if (c.contains("workingDir") && c["workingDir"].is_string()) {
    spec.working_dir = c["workingDir"].get<std::string>();
  } else {
    // A container starts in its image's WORKDIR, "/" for most images; a plain process starts in
    // its step's own directory rather than wherever kiln was started.
    spec.working_dir = sandboxed_ ? "/" : dir + "/tmp";
  }
  spec.log_path = dir + "/log";
  Result<void> placed = MountVolumes(step, &spec.sandbox);
  if (placed) placed = PlaceInputs(step, dir, &spec.sandbox);
  if (!placed) {
    scheduler::StepFinished f;
    f.node = step.node;
    f.error = true;
    f.exit_code = -1;
    f.message = placed.error().message();
    pool_.Release(grant);
    auto report = p.report;
    boost::asio::post(io_, [report, f] { report(f); });
    return;
  }
  if (sandboxed_) {
    Sandbox& sb = spec.sandbox ? *spec.sandbox : spec.sandbox.emplace();
    sb.private_tmp = true;
    sb.tmp_dir_on_host = dir + "/tmp";
    if (!cuda.empty()) sb.devices = NvidiaDeviceNodes();  // a GPU step must reach the driver
    // Output files outside /tmp: give their directories a writable place of their own.
    if (step.tmpl) {
      std::vector<std::string> out_paths;
      for (const dag::Parameter& out : step.tmpl->outputs.parameters) {
        if (out.value_from && !out.value_from->path.empty())
          out_paths.push_back(out.value_from->path);
      }
      for (const dag::Artifact& out : step.tmpl->outputs.artifacts) {
        if (!out.path.empty()) out_paths.push_back(out.path);
      }
      std::set<std::string> bound;
      std::vector<std::string> mounts;  // outputs inside a volume are read from the volume
      if (step.container.contains("volumeMounts") && step.container["volumeMounts"].is_array()) {
        for (const dag::Json& m : step.container["volumeMounts"]) mounts.push_back(m.value("mountPath", ""));
      }
      for (const std::string& out_path : out_paths) {
        fs::path parent = fs::path(out_path).parent_path();
        if (out_path == "/tmp" || out_path.starts_with("/tmp/")) continue;
        if (std::any_of(mounts.begin(), mounts.end(), [&](const std::string& m) {
              return !m.empty() && (out_path == m || out_path.starts_with(m.back() == '/' ? m : m + "/"));
            })) {
          continue;
        }
        if (parent == "/") {
          // A file right under /: bind the file itself (binding a directory over / would hide
          // the host). It starts empty.
          std::string host = dir + "/out" + out_path;
          fs::create_directories(dir + "/out", ec);
          std::ofstream touch(host, std::ios::app);
          sb.binds.push_back(Bind{host, out_path, false});
          continue;
        }
        // A parent the host lacks (/mnt/out for /mnt/out/part.json) is the step's to create, as
        // in a container image without it: bind the nearest directory the host has (/mnt), so
        // the step's mkdir succeeds; under / the missing top directory itself.
        if (parent.is_absolute() && !fs::exists(parent, ec)) {
          fs::path top = parent;  // the highest directory the host lacks
          while (top.parent_path() != "/" && !fs::exists(top.parent_path(), ec)) top = top.parent_path();
          parent = top.parent_path() == "/" ? top : top.parent_path();
        }
        if (!bound.insert(parent.string()).second) continue;
        if (parent.empty()) continue;
        std::string host = dir + "/out" + parent.string();
        fs::create_directories(host, ec);
        sb.binds.push_back(Bind{host, parent.string(), false});
      }
    }
    // bwrap mounts in order: a directory before what is bound inside it (an input file inside
    // an output directory, a volume inside /mnt), or it would hide them.
    std::stable_sort(sb.binds.begin(), sb.binds.end(), [](const Bind& x, const Bind& y) {
      auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
      return depth(x.sandbox_path) < depth(y.sandbox_path);
    });
  }
  std::string node = step.node;
  auto report = p.report;
  scheduler::LaunchStep copy = step;
  ProcessId pid = runner_.Start(std::move(spec), [this, node, copy, dir, report](ProcessResult r) {
    auto it = running_.find(node);
    if (it != running_.end()) {
      pool_.Release(it->second.grant);
      running_.erase(it);
    }
    Finish(node, copy, dir, r, report);
    Admit();
  });
  running_[node] = Running{pid, std::move(grant)};
  boost::asio::post(io_, [report, node] { report(scheduler::StepStarted{node}); });
}

void LocalStepRunner::Finish(const std::string& node, const scheduler::LaunchStep& step,
                             const std::string& dir, const ProcessResult& r,
                             const std::function<void(scheduler::Event)>& report) {
  scheduler::StepFinished f;
  f.node = node;
  f.exit_code = r.exit_code;
  if (r.start_error) {
    f.error = true;
    f.message = *r.start_error;
    report(f);
    return;
  }
  std::string out = r.stdout_text;
  f.result = TrimTrailingNewlines(out);
  if (r.stdout_truncated) f.message = "stdout over 256 KiB; outputs.result holds its first 256 KiB";
  if (r.terminated) f.message = "terminated";
  if (step.tmpl) {
    for (const dag::Parameter& p : step.tmpl->outputs.parameters) {
      if (!p.value_from || p.value_from->path.empty()) continue;
      const std::string& path = p.value_from->path;
      std::string host = OutputHostPath(step, dir, path);
      bool ok = false;
      std::string value = ReadFile(host, &ok);
      if (ok) {
        f.outputs[p.name] = TrimTrailingNewlines(value);
      } else if (p.value_from->default_value) {
        f.outputs[p.name] = *p.value_from->default_value;
      } else if (r.exit_code == 0) {
        f.error = true;
        f.message = "output parameter " + Quote(p.name) + ": cannot read " + path +
                    " (the step did not write it)";
      }
    }
    for (const dag::Artifact& a : step.tmpl->outputs.artifacts) {
      if (a.path.empty()) continue;
      std::string host = OutputHostPath(step, dir, a.path);
      std::error_code ec;
      if (!fs::exists(host, ec)) {
        if (!a.optional && r.exit_code == 0) {
          f.error = true;
          f.message = "output artifact " + Quote(a.name) + ": " + a.path +
                      " does not exist (the step did not write it)";
        }
        continue;
      }
      auto ref = StoreOutput(step, a, host);
      if (!ref) {
        f.error = true;
        f.message = ref.error().message();
        continue;
      }
      f.artifacts[a.name] = *ref;
    }
  }
  report(f);
}

void LocalStepRunner::Kill(const std::string& node) {
  auto it = running_.find(node);
  if (it != running_.end()) {
    runner_.Terminate(it->second.pid, options_.kill_grace);
    return;
  }
  // Not started yet: drop it from the queue and report it terminated.
  for (auto w = waiting_.begin(); w != waiting_.end(); ++w) {
    if (w->step.node != node) continue;
    scheduler::StepFinished f;
    f.node = node;
    f.exit_code = 143;
    f.message = "terminated before it started";
    auto report = w->report;
    waiting_.erase(w);
    boost::asio::post(io_, [report, f] { report(f); });
    return;
  }
}

}  // namespace kiln::executor
