variable "kubeconfig_path" {
  description = "Kubeconfig of the target cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "namespace" {
  description = "Namespace of the forge-app release."
  type        = string
  default     = "forge"
}

variable "image_registry" {
  description = "Registry holding the order-command and order-query images."
  type        = string
}

variable "image_tag" {
  description = "Image tag to deploy (an immutable version, never latest)."
  type        = string
}

# Connection strings of the managed PostgreSQL databases and broker, provisioned by the
# platform's own modules (RDS / Cloud SQL, ElastiCache / Memorystore) and passed in here.
variable "command_database_url" {
  description = "postgresql+asyncpg:// URL of the order (write) database."
  type        = string
  sensitive   = true
}

variable "query_database_url" {
  description = "postgresql+asyncpg:// URL of the read-model database."
  type        = string
  sensitive   = true
}

variable "broker_url" {
  description = "redis://, amqp:// or kafka:// URL of the event bus."
  type        = string
  sensitive   = true
}
