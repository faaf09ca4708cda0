"""Model serving: the HTTP server over pushed servables."""
