provider "kubernetes" {
  config_path = pathexpand(var.kubeconfig_path)
}

provider "helm" {
  kubernetes {
    config_path = pathexpand(var.kubeconfig_path)
  }
}

resource "kubernetes_namespace_v1" "forge" {
  metadata {
    name = var.namespace
  }
}

# The secrets the chart references by name (values.yaml: secrets).
resource "kubernetes_secret_v1" "command_db" {
  metadata {
    name      = "order-command-db"
    namespace = kubernetes_namespace_v1.forge.metadata[0].name
  }
  data = {
    DATABASE_URL = var.command_database_url
  }
}

resource "kubernetes_secret_v1" "query_db" {
  metadata {
    name      = "order-query-db"
    namespace = kubernetes_namespace_v1.forge.metadata[0].name
  }
  data = {
    DATABASE_URL = var.query_database_url
  }
}

resource "kubernetes_secret_v1" "platform" {
  metadata {
    name      = "forge-platform"
    namespace = kubernetes_namespace_v1.forge.metadata[0].name
  }
  data = {
    BROKER_URL = var.broker_url
  }
}

resource "helm_release" "orders" {
  name      = "forge-app"
  namespace = kubernetes_namespace_v1.forge.metadata[0].name
  chart     = "${path.module}/../helm/forge-app"
  atomic    = true
  timeout   = 600

  set {
    name  = "image.registry"
    value = var.image_registry
  }

  set {
    name  = "image.tag"
    value = var.image_tag
  }

  depends_on = [
    kubernetes_secret_v1.command_db,
    kubernetes_secret_v1.query_db,
    kubernetes_secret_v1.platform,
  ]
}
