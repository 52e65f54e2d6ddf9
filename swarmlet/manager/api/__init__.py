"""The swarm's endpoints, which need the cluster's state: the handlers a manager that holds the
store runs (``cluster.LocalCluster``), and forwarding between managers (``follower.py``,
``leader.py``, ``forwarded.py``). Imported only where a node is or becomes a manager; the API
every node serves is ``swarmlet.api``."""
