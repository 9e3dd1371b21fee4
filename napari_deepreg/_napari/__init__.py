"""npe2 adapters, the only part of the package that imports napari, Qt or magicgui.

``_widget`` (the Registration dock widget) and its parts: ``_inputs`` (layers -> volumes),
``_parameters`` (a method's settings as widgets), ``_run`` (the worker's generator), ``_layers``
(a RegistrationResult as layers on the fixed grid, direction included), ``_save`` (the save
actions) and ``_ui`` (Qt pieces); ``_reader`` / ``_writer`` (medical volumes with their geometry)
and ``_sample_data`` (the bundled brain pairs). ``napari_deepreg/napari.yaml`` points napari at
them.
"""
