#include "dag/internal/k8s_schemas.h"

namespace kiln::dag::internal {

namespace {

using K = JsonKind;

const JsonSchema kOpen{"object", {}, true};

const JsonSchema kKeySelector{"KeySelector", {
    {"name", K::kString}, {"key", K::kString}, {"optional", K::kBool}}};
const JsonSchema kFieldSelector{"ObjectFieldSelector", {
    {"apiVersion", K::kString}, {"fieldPath", K::kString}}};
const JsonSchema kResourceFieldSelector{"ResourceFieldSelector", {
    {"containerName", K::kString}, {"resource", K::kString}, {"divisor", K::kQuantity}}};
const JsonSchema kEnvVarSource{"EnvVarSource", {
    {"configMapKeyRef", K::kObject, &kKeySelector},
    {"secretKeyRef", K::kObject, &kKeySelector},
    {"fieldRef", K::kObject, &kFieldSelector},
    {"resourceFieldRef", K::kObject, &kResourceFieldSelector}}};
const JsonSchema kEnvVar{"EnvVar", {
    {"name", K::kString}, {"value", K::kString}, {"valueFrom", K::kObject, &kEnvVarSource}}};
const JsonSchema kEnvFromSource{"EnvFromSource", {
    {"prefix", K::kString},
    {"configMapRef", K::kObject, &kKeySelector},
    {"secretRef", K::kObject, &kKeySelector}}};
const JsonSchema kResourceClaim{"ResourceClaim", {{"name", K::kString}, {"request", K::kString}}};
const JsonSchema kResources{"ResourceRequirements", {
    {"limits", K::kQuantityMap},
    {"requests", K::kQuantityMap},
    {"claims", K::kArray, &kResourceClaim, K::kObject}}};
const JsonSchema kVolumeMount{"VolumeMount", {
    {"name", K::kString}, {"mountPath", K::kString}, {"readOnly", K::kBool},
    {"subPath", K::kString}, {"subPathExpr", K::kString}, {"mountPropagation", K::kString},
    {"recursiveReadOnly", K::kString}}};
const JsonSchema kVolumeDevice{"VolumeDevice", {{"name", K::kString}, {"devicePath", K::kString}}};
const JsonSchema kContainerPort{"ContainerPort", {
    {"name", K::kString}, {"containerPort", K::kInt}, {"hostPort", K::kInt},
    {"protocol", K::kString}, {"hostIP", K::kString}}};
const JsonSchema kResizePolicy{"ContainerResizePolicy", {
    {"resourceName", K::kString}, {"restartPolicy", K::kString}}};

std::vector<JsonField> ContainerFields() {
  return {
      {"name", K::kString},
      {"image", K::kString},
      {"command", K::kArray, nullptr, K::kString},
      {"args", K::kArray, nullptr, K::kString},
      {"workingDir", K::kString},
      {"ports", K::kArray, &kContainerPort, K::kObject},
      {"envFrom", K::kArray, &kEnvFromSource, K::kObject},
      {"env", K::kArray, &kEnvVar, K::kObject},
      {"resources", K::kObject, &kResources},
      {"resizePolicy", K::kArray, &kResizePolicy, K::kObject},
      {"restartPolicy", K::kString},
      {"volumeMounts", K::kArray, &kVolumeMount, K::kObject},
      {"volumeDevices", K::kArray, &kVolumeDevice, K::kObject},
      {"livenessProbe", K::kObject, &kOpen},
      {"readinessProbe", K::kObject, &kOpen},
      {"startupProbe", K::kObject, &kOpen},
      {"lifecycle", K::kObject, &kOpen},
      {"terminationMessagePath", K::kString},
      {"terminationMessagePolicy", K::kString},
      {"imagePullPolicy", K::kString},
      {"securityContext", K::kObject, &kOpen},
      {"stdin", K::kBool},
      {"stdinOnce", K::kBool},
      {"tty", K::kBool},
  };
}

JsonSchema MakeContainer(std::string_view name, std::vector<JsonField> extra) {
  JsonSchema s{name, ContainerFields()};
  for (JsonField& f : extra) s.fields.push_back(f);
  return s;
}

const JsonSchema kNodeSelectorRequirement{"NodeSelectorRequirement", {
    {"key", K::kString}, {"operator", K::kString}, {"values", K::kArray, nullptr, K::kString}}};
const JsonSchema kNodeSelectorTerm{"NodeSelectorTerm", {
    {"matchExpressions", K::kArray, &kNodeSelectorRequirement, K::kObject},
    {"matchFields", K::kArray, &kNodeSelectorRequirement, K::kObject}}};
const JsonSchema kNodeSelector{"NodeSelector", {
    {"nodeSelectorTerms", K::kArray, &kNodeSelectorTerm, K::kObject}}};
const JsonSchema kPreferredSchedulingTerm{"PreferredSchedulingTerm", {
    {"weight", K::kInt}, {"preference", K::kObject, &kNodeSelectorTerm}}};
const JsonSchema kNodeAffinity{"NodeAffinity", {
    {"requiredDuringSchedulingIgnoredDuringExecution", K::kObject, &kNodeSelector},
    {"preferredDuringSchedulingIgnoredDuringExecution", K::kArray, &kPreferredSchedulingTerm,
     K::kObject}}};
const JsonSchema kAffinity{"Affinity", {
    {"nodeAffinity", K::kObject, &kNodeAffinity},
    {"podAffinity", K::kObject, &kOpen},
    {"podAntiAffinity", K::kObject, &kOpen}}};

const JsonSchema kToleration{"Toleration", {
    {"key", K::kString}, {"operator", K::kString}, {"value", K::kString},
    {"effect", K::kString}, {"tolerationSeconds", K::kInt}}};

const JsonSchema kVolume{"Volume", {
    {"name", K::kString},
    {"emptyDir", K::kObject, &kOpen}, {"hostPath", K::kObject, &kOpen},
    {"persistentVolumeClaim", K::kObject, &kOpen}, {"configMap", K::kObject, &kOpen},
    {"secret", K::kObject, &kOpen}, {"nfs", K::kObject, &kOpen},
    {"downwardAPI", K::kObject, &kOpen}, {"projected", K::kObject, &kOpen},
    {"csi", K::kObject, &kOpen}, {"ephemeral", K::kObject, &kOpen},
    {"image", K::kObject, &kOpen}, {"iscsi", K::kObject, &kOpen},
    {"awsElasticBlockStore", K::kObject, &kOpen}, {"gcePersistentDisk", K::kObject, &kOpen},
    {"azureDisk", K::kObject, &kOpen}, {"azureFile", K::kObject, &kOpen},
    {"cephfs", K::kObject, &kOpen}, {"cinder", K::kObject, &kOpen},
    {"fc", K::kObject, &kOpen}, {"flexVolume", K::kObject, &kOpen},
    {"flocker", K::kObject, &kOpen}, {"gitRepo", K::kObject, &kOpen},
    {"glusterfs", K::kObject, &kOpen}, {"photonPersistentDisk", K::kObject, &kOpen},
    {"portworxVolume", K::kObject, &kOpen}, {"quobyte", K::kObject, &kOpen},
    {"rbd", K::kObject, &kOpen}, {"scaleIO", K::kObject, &kOpen},
    {"storageos", K::kObject, &kOpen}, {"vsphereVolume", K::kObject, &kOpen}}};

const JsonSchema kObjectMeta{"ObjectMeta", {
    {"name", K::kString}, {"generateName", K::kString}, {"namespace", K::kString},
    {"labels", K::kStringMap}, {"annotations", K::kStringMap}, {"finalizers", K::kArray, nullptr, K::kString},
    {"ownerReferences", K::kArray, &kOpen, K::kObject}, {"uid", K::kString},
    {"resourceVersion", K::kString}, {"creationTimestamp", K::kAny}}};

const JsonSchema kPvcResources{"VolumeResourceRequirements", {
    {"limits", K::kQuantityMap}, {"requests", K::kQuantityMap}}};
const JsonSchema kPvcSpec{"PersistentVolumeClaimSpec", {
    {"accessModes", K::kArray, nullptr, K::kString},
    {"selector", K::kObject, &kOpen},
    {"resources", K::kObject, &kPvcResources},
    {"volumeName", K::kString},
    {"storageClassName", K::kString},
    {"volumeMode", K::kString},
    {"dataSource", K::kObject, &kOpen},
    {"dataSourceRef", K::kObject, &kOpen},
    {"volumeAttributesClassName", K::kString}}};
const JsonSchema kPvc{"PersistentVolumeClaim", {
    {"apiVersion", K::kString}, {"kind", K::kString},
    {"metadata", K::kObject, &kObjectMeta},
    {"spec", K::kObject, &kPvcSpec},
    {"status", K::kObject, &kOpen}}};

const JsonSchema kLocalObjectReference{"LocalObjectReference", {{"name", K::kString}}};
const JsonSchema kHostAlias{"HostAlias", {{"ip", K::kString}, {"hostnames", K::kArray, nullptr, K::kString}}};

}  // namespace

const JsonSchema& ContainerSchema(ContainerFlavor flavor) {
  static const JsonSchema kContainer = MakeContainer("Container", {});
  static const JsonSchema kScript = MakeContainer("ScriptTemplate", {{"source", K::kString}});
  static const JsonSchema kMember =
      MakeContainer("ContainerNode", {{"dependencies", K::kArray, nullptr, K::kString}});
  static const JsonSchema kUser =
      MakeContainer("UserContainer", {{"mirrorVolumeMounts", K::kBool}});
  switch (flavor) {
    case ContainerFlavor::kContainer: return kContainer;
    case ContainerFlavor::kScript: return kScript;
    case ContainerFlavor::kContainerSetMember: return kMember;
    case ContainerFlavor::kUserContainer: return kUser;
  }
  return kContainer;
}

const JsonSchema& VolumeSchema() { return kVolume; }
const JsonSchema& TolerationSchema() { return kToleration; }
const JsonSchema& AffinitySchema() { return kAffinity; }
const JsonSchema& PersistentVolumeClaimSchema() { return kPvc; }
const JsonSchema& ObjectMetaSchema() { return kObjectMeta; }
const JsonSchema& PodSecurityContextSchema() { return kOpen; }
const JsonSchema& LocalObjectReferenceSchema() { return kLocalObjectReference; }
const JsonSchema& HostAliasSchema() { return kHostAlias; }
const JsonSchema& PodDNSConfigSchema() { return kOpen; }
const JsonSchema& KeySelectorSchema() { return kKeySelector; }
const JsonSchema& ResourceRequirementsSchema() { return kResources; }
const JsonSchema& PodResourceClaimSchema() {
  static const JsonSchema kClaim{"PodResourceClaim", {
      {"name", K::kString}, {"resourceClaimName", K::kString},
      {"resourceClaimTemplateName", K::kString}}};
  return kClaim;
}

}  // namespace kiln::dag::internal
