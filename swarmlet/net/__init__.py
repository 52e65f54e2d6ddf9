"""The network data plane: the kernel's VXLAN, bridges, veths and nftables, programmed from
Python, plus the embedded DNS. The manager allocates; every host programs itself."""
