// The `--executor kubernetes` options that `kiln run` and `kiln server` share, declared once.
#ifndef KILN_CLI_KUBERNETES_FLAGS_H_
#define KILN_CLI_KUBERNETES_FLAGS_H_

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

namespace kiln::cli {

struct KubernetesFlags {
  std::string* kubeconfig;
  int64_t* ttl_seconds_after_finished;  // -1: not set
  std::string* accelerators;
  std::string* agent_image;
  std::string* agent_path;
  std::string* artifact_pvc;
};

// Adds --kubeconfig, --ttl-seconds-after-finished, --accelerators, --agent-image, --agent-path
// and --artifact-pvc to `cmd`, bound to `flags`.
inline void AddKubernetesFlags(CLI::App* cmd, const KubernetesFlags& flags) {
  cmd->add_option("--kubeconfig", *flags.kubeconfig,
                  "The kubeconfig for --executor kubernetes (default $KUBECONFIG, else ~/.kube/config if it "
                  "exists, else the pod's service account when running in a cluster)");
  cmd->add_option("--ttl-seconds-after-finished", *flags.ttl_seconds_after_finished,
                  "--executor kubernetes: let Kubernetes delete each finished Job (and its pod) this many "
                  "seconds after it ends (default: Jobs stay)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--accelerators", *flags.accelerators,
                  "A YAML file of accelerator profiles for kiln.dev/accelerator (added to the built-in ones; "
                  "docs/kubernetes.md)");
  cmd->add_option("--agent-image", *flags.agent_image,
                  "Kubernetes: an image with kiln at /usr/local/bin/kiln; each step's pod copies it in and runs "
                  "its command under `kiln exec`, which reports outputs.result and output parameters from files");
  cmd->add_option("--agent-path", *flags.agent_path,
                  "Kubernetes: kiln is already at this path in every step's container (instead of --agent-image)");
  cmd->add_option("--artifact-pvc", *flags.artifact_pvc,
                  "Kubernetes: the ReadWriteMany PersistentVolumeClaim (in the Jobs' namespace) that holds the "
                  "artifact repository; steps with artifacts mount it, and this kiln must see the same volume "
                  "at <data dir>/artifacts (deploy/ mounts it there)");
}

}  // namespace kiln::cli

#endif  // KILN_CLI_KUBERNETES_FLAGS_H_
