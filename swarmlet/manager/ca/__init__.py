"""The manager's certificate authority and the paths it serves on the manager's port."""

from swarmlet.manager.ca.authority import CertificateAuthority, Issued, new_cluster_root

__all__ = ["CertificateAuthority", "Issued", "new_cluster_root"]
