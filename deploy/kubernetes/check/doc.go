// Package check validates deploy/kubernetes/ without a cluster: each
// manifest is decoded strictly into the Kubernetes API's own Go types
// (k8s.io/api; KEDA's resources into hand-written structs of their
// documented fields), so an unknown field, a misspelling or a wrong type
// fails, and the resources are checked against each other (selectors,
// ports, names, grace periods). It is its own module so that the main
// module does not depend on k8s.io/api. Run it with `make deploy-check`.
package check
