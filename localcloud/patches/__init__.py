"""Emulator fixes, one module each, applied by ``localcloud.moto_patches.apply()``."""
