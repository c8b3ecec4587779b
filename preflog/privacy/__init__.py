"""Personal data that can be forgotten: pseudonyms, consent, sealed fields and erasure (docs/privacy.md).

* :mod:`.fields`: the reserved ``preflog.*`` metadata keys (subject, key, consent, retention);
* :mod:`.pseudonym`: keyed pseudonyms of user, session and annotator ids;
* :mod:`.keys`: master keys and the data keys they wrap; :mod:`.store`: the keys topic;
* :mod:`.envelope`: one sealed text; :mod:`.sealer`: the SDK's side; :mod:`.keyring`: the readers' side;
* :mod:`.erase`: erasure, its receipts, and what it reaches.
"""
