"""talksbot, the application: configuration, the wiring that opens the store and the answer
pipeline once, the ``talksbot`` command, the Telegram front end and the pushes."""
