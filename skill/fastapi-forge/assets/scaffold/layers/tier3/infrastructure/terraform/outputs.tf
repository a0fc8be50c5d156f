output "namespace" {
  description = "Namespace the release runs in."
  value       = kubernetes_namespace_v1.forge.metadata[0].name
}

output "release_revision" {
  description = "Revision of the Helm release (helm rollback target)."
  value       = helm_release.orders.metadata[0].revision
}
