"""Just-in-time approvals: a ``require_approval`` decision holds the operation until humans approve it.

One concept per module: ``settings`` (``settings.approval`` and a rule's ``approval:``),
``model`` (the approval request as stored), ``signing`` (binding hash, signed links, page tokens),
``store`` (the DynamoDB table), ``workflow`` (Step Functions), ``mail`` (SES or the local outbox),
``email`` and ``pages`` (what approvers read), ``service`` (hold, poll, view, decide, execute,
cancel), ``notifier`` (the SQS consumer that keeps the task token and sends the mail), ``api``
(the HTTP routes), ``revocation`` (the agent registry's listener). docs/architecture.md#approvals.
"""
