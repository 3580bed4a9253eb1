"""CyberBill Studio core: the shell's services (config, i18n, jobs, store, models, media, API).

Nothing in here knows about a particular module; modules only depend on core.
"""
