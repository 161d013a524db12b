"""The local cloud: the moto server as the AWS API, plus (later) a data plane of real processes.

Not part of the built collection (see galaxy.yml build_ignore).
"""
