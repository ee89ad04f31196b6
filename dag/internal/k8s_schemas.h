// Schemas of the Kubernetes objects that Argo manifests embed and kiln passes through to pods.
// Private to dag/. Types follow the Kubernetes core/v1 API.
#ifndef KILN_DAG_INTERNAL_K8S_SCHEMAS_H_
#define KILN_DAG_INTERNAL_K8S_SCHEMAS_H_

#include "dag/internal/yaml_reader.h"

namespace kiln::dag::internal {

// Container fields; `extra` adds Argo's own (script `source`, containerSet `dependencies`,
// sidecar `mirrorVolumeMounts`).
enum class ContainerFlavor { kContainer, kScript, kContainerSetMember, kUserContainer };
const JsonSchema& ContainerSchema(ContainerFlavor flavor);
const JsonSchema& VolumeSchema();
const JsonSchema& TolerationSchema();
const JsonSchema& AffinitySchema();
const JsonSchema& PersistentVolumeClaimSchema();
const JsonSchema& ObjectMetaSchema();
const JsonSchema& PodSecurityContextSchema();
const JsonSchema& LocalObjectReferenceSchema();
const JsonSchema& HostAliasSchema();
const JsonSchema& PodDNSConfigSchema();
const JsonSchema& KeySelectorSchema();            // configMapKeyRef / secretKeyRef
const JsonSchema& ResourceRequirementsSchema();   // limits, requests, claims
const JsonSchema& PodResourceClaimSchema();       // pod spec resourceClaims[]

}  // namespace kiln::dag::internal

#endif  // KILN_DAG_INTERNAL_K8S_SCHEMAS_H_
