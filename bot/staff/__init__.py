"""The staff side: accounts, sign-in and the web console where staff take over conversations."""
