"""``dart deploy``: one YAML environment file -> one CloudFormation stack (generated with troposphere) holding
dart's production wiring on AWS (docs/deploy.md)."""
