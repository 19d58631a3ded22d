// Package deploy holds the deployment files (docker-compose.yml's
// Prometheus, kubernetes/) and, in its test, the checks that tie them to
// the code: every variable they set is one config reads, the values they
// set form a valid configuration, the grace periods outlast
// SHUTDOWN_TIMEOUT, and the Redis lists KEDA watches are the ones asynq
// fills. The schema checks of the Kubernetes manifests and the Dockerfiles
// are the separate module in check/ (make deploy-check).
package deploy
