"""From MIDI to sound: synthesis (``render``), mastering (``master``), speech in a clip's sound
(``speech``), how the music meets that sound (``mix``) and the muxed copy of the video (``mux``)."""
