// Package check validates the deployment files without a Docker engine or a
// cluster (make deploy-check):
//
//   - the Kubernetes manifests in deploy/kubernetes are decoded strictly into
//     the Kubernetes API's own Go types (k8s.io/api; KEDA's resources into
//     hand-written structs of their documented fields), so an unknown field,
//     a misspelling or a wrong type fails, and the resources are checked
//     against each other (selectors, ports, names, grace periods);
//   - the Dockerfiles are parsed by BuildKit's own Dockerfile frontend, with
//     its linter's rules as errors.
//
// It is its own module so that the main module depends on neither k8s.io/api
// nor BuildKit.
package check
