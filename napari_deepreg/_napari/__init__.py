"""npe2 adapters, the only part of the package that imports napari, Qt or magicgui.

``_widget`` (the Registration dock widget), ``_layers`` (a RegistrationResult as layer data
tuples), ``_reader`` / ``_writer`` (medical volumes with their geometry) and ``_sample_data``
(the bundled brain pairs); ``napari_deepreg/napari.yaml`` points napari at them.
"""
