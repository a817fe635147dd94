"""The mail pipeline's shared half: stream names, the outbox, rendering and delivery."""
