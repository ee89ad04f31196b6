// Sandboxing steps with bubblewrap (bwrap): what a sandbox holds and whether bwrap works here.
// Thread-safety: plain values; DetectBubblewrap is safe from any thread (it probes once).
#ifndef KILN_EXECUTOR_SANDBOX_H_
#define KILN_EXECUTOR_SANDBOX_H_

#include <string>
#include <vector>

namespace kiln::executor {

// A host path made visible inside the sandbox (a workflow volume at its mountPath).
struct Bind {
  std::string host_path;     // must exist on the host
  std::string sandbox_path;  // absolute path inside the sandbox
  bool read_only = false;
};

// How one step is sandboxed. Layout inside: the host's top-level directories bound read-only, a
// fresh /dev and /proc, /tmp private to the step, then `binds` in order, a PID namespace of its
// own, and a new session. See docs/executor.md.
struct Sandbox {
  std::vector<Bind> binds;
  // true: /tmp is private to the step. It lives in `tmp_dir_on_host` (created if missing, kept
  // after exit so files the step wrote to /tmp can be collected as outputs), or on a tmpfs that
  // vanishes at exit when `tmp_dir_on_host` is empty. false: the host's /tmp is shared.
  bool private_tmp = true;
  std::string tmp_dir_on_host;
  // Host device nodes made visible inside the sandbox (its /dev holds only the basic ones):
  // the NVIDIA devices of a step granted GPUs. Missing ones are skipped.
  std::vector<std::string> devices;
  // Non-empty: / is this host directory (created if missing), writable, like a container's
  // writable layer, instead of a read-only tmpfs: the host's top-level directories are still
  // bound read-only, except /mnt, /srv and /media, which start empty and writable, as in a
  // container image. For kubesim's process containers, where steps write /result.txt or
  // /mnt/out as they would in a pod.
  std::string root_dir_on_host;
};

// The NVIDIA device nodes a GPU step needs: the control and UVM nodes and every /dev/nvidiaN
// (CUDA_VISIBLE_DEVICES then picks among them, by CUDA's numbering). Only those that exist.
std::vector<std::string> NvidiaDeviceNodes(const std::string& dev_dir = "/dev");

// Whether bubblewrap can be used on this machine.
struct BubblewrapStatus {
  bool available = false;
  std::string path;     // absolute path of bwrap when available
  std::string warning;  // when not available: one sentence for the user, printed once by the caller
};

// Finds bwrap ("/usr/bin/bwrap", else on PATH) and checks that it works by running
// `bwrap --ro-bind / / --dev /dev --proc /proc --unshare-pid --die-with-parent true` (in some
// containers bwrap exists but cannot create namespaces). Probes once per process; later calls
// return the cached answer. Never fails: when bwrap is unusable, `warning` says why and that steps
// run as plain processes.
const BubblewrapStatus& DetectBubblewrap();

// Probes a specific bwrap binary (no caching). DetectBubblewrap() uses it; tests too.
BubblewrapStatus ProbeBubblewrap(const std::string& bwrap_path);

}  // namespace kiln::executor

#endif  // KILN_EXECUTOR_SANDBOX_H_
