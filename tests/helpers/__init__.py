"""Every helper the tests share, in one place (no test imports another test module):

- ``samples``: the bundled sample files;
- ``e2e``: driving a running stack as a client would (upload, submit, poll, wait);
- ``stacks``: starting pieces of a stack by hand, settings for one, apps served in a thread;
- ``media``: making audio and looking inside media files (ffprobe);
- ``hostile``: URLs the SSRF guard must refuse.
"""
