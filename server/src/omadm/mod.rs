//! OMA-DM 1.2 (SyncML DM) and FUMO: the message model, its XML and WBXML
//! forms, client and server authentication, and the session logic, all
//! pure (bytes in, typed messages out). See `oma-dm.md` in the design notes.
