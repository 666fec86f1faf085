"""Local mode (``wardgate dev``): the real handlers, moto for AWS, a development issuer and a demo upstream.

Nothing here is imported by the Lambda functions.
"""
