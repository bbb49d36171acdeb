"""Operations behind `manage.py keyed_storage`: the IAM policy, the doctor, sync."""
