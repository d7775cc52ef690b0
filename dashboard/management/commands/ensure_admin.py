import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the `admin` superuser with a random password, printed once, if none exists."

    def handle(self, *args, **options) -> None:
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stdout.write(
                "A superuser exists already. Forgot the password? "
                "Run: .venv/bin/python manage.py changepassword admin"
            )
            return
        password = secrets.token_urlsafe(12)
        users.create_superuser("admin", "admin@localhost", password)
        self.stdout.write(
            self.style.SUCCESS(f"Log in as admin with password {password} (shown only once).")
        )
