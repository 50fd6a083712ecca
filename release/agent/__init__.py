"""The host agent: the standard-library-only program that runs on the node for one operation.

It travels with every operation (`release.hosts.bundle`), so nothing is installed on the host,
and it imports only the standard library and its own modules (relatively: on the host the
package has another name). `protocol` is the one definition of what it is asked and answers.
"""
