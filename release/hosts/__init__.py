"""Operating hosts: environments, SSH, operations and the commands that act on a host."""
