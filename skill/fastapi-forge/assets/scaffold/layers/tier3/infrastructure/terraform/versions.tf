terraform {
  required_version = ">= 1.6"

  required_providers {
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.36"
    }
  }

  # Keep state remote and locked, e.g. an S3 bucket with locking, GCS or Terraform Cloud:
  # backend "s3" {}
}
