"""The app's routers."""
