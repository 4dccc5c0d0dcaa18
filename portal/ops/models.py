from django.db import models


class Heartbeat(models.Model):
    """A ``portal.health`` task that a worker executed: proof that queue, worker and
    database work together. Beat sends one every minute; tests send their own."""

    nonce = models.CharField(max_length=64, unique=True)
    worker = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        get_latest_by = "created_at"

    def __str__(self) -> str:
        return f"{self.worker} at {self.created_at:%Y-%m-%d %H:%M:%S}"
