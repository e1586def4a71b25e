"""Social listening: posts about the operator found on Mastodon, decided on, answered with a personal
contact link, escalated when critical."""
