//! The provider records this node holds, for itself and for others: Kademlia's record store,
//! bounded against peers that publish without end.
//!
//! libp2p's `MemoryStore` keeps up to 20 provider records per key inline, about 3 KiB per key
//! even for a key with one provider, and forgets an expired record only when its key is asked
//! for: a peer publishing 100,000 made-up keys would cost a node 300 MiB for good. This store
//! keeps a key's providers in a vector sized to what the key has (about 250 bytes for one), and
//! bounds what others can make it hold:
//! - keys in all (`MAX_KEYS`), with expired records swept out before a new key is refused;
//! - providers per key (`MAX_PROVIDERS_PER_KEY`; later ones are ignored, so flooding a key
//!   cannot push out its first providers);
//! - keys one other peer provides (`MAX_KEYS_PER_PEER`): a real node advertises a few thousand;
//! - addresses kept per record (`ADDRESSES_PER_PEER`).
//!
//! Speil stores no values in the DHT (only provider records), so value records are refused.
//!
//! Providers this node has lost every connection to are "gone": their records stay, but no
//! lookup is answered with them until they connect again (or the records expire). A holder
//! publishes to the nodes closest to a key and stays connected to them, so when it dies those
//! nodes see its connection close at once. Without this, the records of dead holders would be
//! handed out until they expire (30 minutes), and since a key keeps its first providers, the
//! live holders that published later would not be found at all (issue 15 measured 0 providers
//! found with 4 of 30 holders alive). A key therefore keeps many more providers than Kademlia's
//! replication factor of 20 (most keys have a handful; an image on every node of a large
//! cluster has one per node), and a lookup is answered with at most `MAX_PROVIDERS_ANSWERED`
//! live ones, which keeps the answer within Kademlia's 16 KiB message limit.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

use libp2p::PeerId;
use libp2p::kad::store::{Error, RecordStore, Result};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

use super::address_book::ADDRESSES_PER_PEER;

/// Most keys with provider records, this node's own and others'.
const MAX_KEYS: usize = 200_000;
/// Most providers kept per key: every node of a cluster of a few hundred.
const MAX_PROVIDERS_PER_KEY: usize = 256;
/// Most providers a lookup of one key is answered with: about 70 bytes each in a Kademlia
/// message, which may not exceed 16 KiB.
const MAX_PROVIDERS_ANSWERED: usize = 64;
/// Most peers remembered as gone.
const MAX_GONE: usize = 10_000;
/// Most keys one other peer may have records of here: a node holding a thousand images of 20
/// digests each; about 10 MiB of records.
const MAX_KEYS_PER_PEER: usize = 20_000;

/// Provider records by key, this node's own among them.
pub(crate) struct ProviderStore {
    local: PeerId,
    providers: HashMap<RecordKey, Vec<ProviderRecord>>,
    /// This node's own records, which Kademlia republishes.
    provided: HashMap<RecordKey, ProviderRecord>,
    /// How many keys each other peer has records of.
    per_peer: HashMap<PeerId, usize>,
    /// Peers this node lost every connection to: their records are not handed out.
    gone: HashSet<PeerId>,
}

impl ProviderStore {
    /// An empty store of node `local`.
    pub(crate) fn new(local: PeerId) -> Self {
        ProviderStore {
            local,
            providers: HashMap::new(),
            provided: HashMap::new(),
            per_peer: HashMap::new(),
            gone: HashSet::new(),
        }
    }

    /// This node lost its last connection to `peer`: hide its records until it is back.
    pub(crate) fn peer_gone(&mut self, peer: PeerId) {
        if !self.per_peer.contains_key(&peer) {
            return; // it provides nothing here
        }
        if self.gone.len() >= MAX_GONE {
            self.gone.clear(); // forgetting who is gone only shows their records again
        }
        self.gone.insert(peer);
    }

    /// `peer` is connected again: its records are handed out again.
    pub(crate) fn peer_back(&mut self, peer: &PeerId) {
        self.gone.remove(peer);
    }

    /// Removes every expired record of others, as of `now`.
    fn sweep(&mut self, now: Instant) {
        let per_peer = &mut self.per_peer;
        self.providers.retain(|_, records| {
            records.retain(|r| {
                let keep = !r.is_expired(now);
                if !keep {
                    forget(per_peer, &r.provider);
                }
                keep
            });
            !records.is_empty()
        });
    }

    /// Whether `provider` (another peer) may have records of one more key here.
    fn peer_has_room(&self, provider: &PeerId) -> bool {
        self.per_peer.get(provider).copied().unwrap_or(0) < MAX_KEYS_PER_PEER
    }
}

/// One key fewer for `peer`.
fn forget(per_peer: &mut HashMap<PeerId, usize>, peer: &PeerId) {
    if let Some(n) = per_peer.get_mut(peer) {
        *n -= 1;
        if *n == 0 {
            per_peer.remove(peer);
        }
    }
}

impl RecordStore for ProviderStore {
    type RecordsIter<'a> = std::iter::Empty<Cow<'a, Record>>;
    type ProvidedIter<'a> = std::iter::Map<
        std::collections::hash_map::Values<'a, RecordKey, ProviderRecord>,
        fn(&'a ProviderRecord) -> Cow<'a, ProviderRecord>,
    >;

    fn get(&self, _: &RecordKey) -> Option<Cow<'_, Record>> {
        None
    }

    fn put(&mut self, _: Record) -> Result<()> {
        Err(Error::MaxRecords)
    }

    fn remove(&mut self, _: &RecordKey) {}

    fn records(&self) -> Self::RecordsIter<'_> {
        std::iter::empty()
    }

    fn add_provider(&mut self, mut record: ProviderRecord) -> Result<()> {
        let is_local = record.provider == self.local;
        let room = is_local || self.peer_has_room(&record.provider);
        record.addresses.truncate(ADDRESSES_PER_PEER);
        if let Some(records) = self.providers.get_mut(&record.key) {
            if let Some(known) = records.iter_mut().find(|r| r.provider == record.provider) {
                *known = record.clone();
            } else if records.len() >= MAX_PROVIDERS_PER_KEY || !room {
                return Ok(()); // ignored, as libp2p's store ignores a full key
            } else {
                records.push(record.clone());
                if !is_local {
                    *self.per_peer.entry(record.provider).or_default() += 1;
                }
            }
        } else {
            if !room {
                return Ok(());
            }
            if self.providers.len() >= MAX_KEYS {
                self.sweep(Instant::now());
                if self.providers.len() >= MAX_KEYS {
                    return Err(Error::MaxProvidedKeys);
                }
            }
            self.providers
                .insert(record.key.clone(), vec![record.clone()]);
            if !is_local {
                *self.per_peer.entry(record.provider).or_default() += 1;
            }
        }
        if is_local {
            self.provided.insert(record.key.clone(), record);
        }
        Ok(())
    }

    fn providers(&self, key: &RecordKey) -> Vec<ProviderRecord> {
        let Some(records) = self.providers.get(key) else {
            return Vec::new();
        };
        records
            .iter()
            .filter(|r| !self.gone.contains(&r.provider))
            .take(MAX_PROVIDERS_ANSWERED)
            .cloned()
            .collect()
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        self.provided.values().map(Cow::Borrowed)
    }

    fn remove_provider(&mut self, key: &RecordKey, provider: &PeerId) {
        if let Some(records) = self.providers.get_mut(key)
            && let Some(i) = records.iter().position(|r| r.provider == *provider)
        {
            records.swap_remove(i);
            if records.is_empty() {
                self.providers.remove(key);
            }
            if *provider == self.local {
                self.provided.remove(key);
            } else {
                forget(&mut self.per_peer, provider);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn record(key: usize, provider: PeerId, expires: Option<Instant>) -> ProviderRecord {
        ProviderRecord {
            key: RecordKey::new(&key.to_be_bytes()),
            provider,
            expires,
            addresses: Vec::new(),
        }
    }

    #[test]
    fn one_peer_cannot_fill_the_store() {
        let (local, rogue, honest) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut store = ProviderStore::new(local);
        for k in 0..MAX_KEYS_PER_PEER + 100 {
            store.add_provider(record(k, rogue, None)).unwrap();
        }
        assert_eq!(store.providers.len(), MAX_KEYS_PER_PEER);
        store
            .add_provider(record(usize::MAX, honest, None))
            .unwrap();
        assert_eq!(
            store.providers(&record(usize::MAX, honest, None).key).len(),
            1
        );
        // The rogue's room comes back as its records go.
        store.remove_provider(&record(0, rogue, None).key, &rogue);
        store
            .add_provider(record(MAX_KEYS_PER_PEER + 1, rogue, None))
            .unwrap();
        assert_eq!(store.per_peer[&rogue], MAX_KEYS_PER_PEER);
    }

    #[test]
    fn a_key_keeps_its_first_providers_and_this_nodes_records() {
        let local = PeerId::random();
        let mut store = ProviderStore::new(local);
        let first: Vec<PeerId> = (0..MAX_PROVIDERS_PER_KEY)
            .map(|_| PeerId::random())
            .collect();
        for p in &first {
            store.add_provider(record(1, *p, None)).unwrap();
        }
        store
            .add_provider(record(1, PeerId::random(), None))
            .unwrap();
        let kept: Vec<PeerId> = store.providers[&record(1, local, None).key]
            .iter()
            .map(|r| r.provider)
            .collect();
        assert_eq!(kept, first);
        store.add_provider(record(2, local, None)).unwrap();
        assert_eq!(store.provided().count(), 1);
        store.remove_provider(&record(2, local, None).key, &local);
        assert_eq!(store.provided().count(), 0);
        assert!(store.providers(&record(2, local, None).key).is_empty());
    }

    #[test]
    fn gone_providers_are_not_handed_out_until_they_are_back() {
        let mut store = ProviderStore::new(PeerId::random());
        let holders: Vec<PeerId> = (0..100).map(|_| PeerId::random()).collect();
        for p in &holders {
            store.add_provider(record(1, *p, None)).unwrap();
        }
        let key = record(1, holders[0], None).key;
        let answered = |store: &ProviderStore| -> Vec<PeerId> {
            store.providers(&key).iter().map(|r| r.provider).collect()
        };
        assert_eq!(answered(&store), holders[..MAX_PROVIDERS_ANSWERED]);
        // The holders a lookup returned die; the others are found at once.
        for p in &holders[..MAX_PROVIDERS_ANSWERED] {
            store.peer_gone(*p);
        }
        assert_eq!(answered(&store), holders[MAX_PROVIDERS_ANSWERED..]);
        store.peer_back(&holders[0]);
        assert_eq!(answered(&store)[0], holders[0]);
        // A peer that provides nothing here is not remembered.
        store.peer_gone(PeerId::random());
        assert_eq!(store.gone.len(), MAX_PROVIDERS_ANSWERED - 1);
    }

    #[test]
    fn expired_records_make_room_when_the_store_is_full() {
        let mut store = ProviderStore::new(PeerId::random());
        let past = Instant::now() - Duration::from_secs(1);
        let peers: Vec<PeerId> = (0..MAX_KEYS / MAX_KEYS_PER_PEER)
            .map(|_| PeerId::random())
            .collect();
        for (i, p) in peers.iter().enumerate() {
            for k in 0..MAX_KEYS_PER_PEER {
                store
                    .add_provider(record(i * MAX_KEYS_PER_PEER + k, *p, Some(past)))
                    .unwrap();
            }
        }
        assert_eq!(store.providers.len(), MAX_KEYS);
        store
            .add_provider(record(usize::MAX, PeerId::random(), None))
            .unwrap();
        assert_eq!(store.providers.len(), 1);
        assert!(store.per_peer.len() == 1);
    }

    #[test]
    fn records_keep_a_bounded_number_of_addresses_and_no_values_are_stored() {
        let mut store = ProviderStore::new(PeerId::random());
        let mut r = record(1, PeerId::random(), None);
        r.addresses = (0..100)
            .map(|i| format!("/ip4/10.0.0.{i}/tcp/5001").parse().unwrap())
            .collect();
        store.add_provider(r.clone()).unwrap();
        assert_eq!(
            store.providers(&r.key)[0].addresses.len(),
            ADDRESSES_PER_PEER
        );
        assert!(store.put(Record::new(r.key.clone(), vec![1])).is_err());
        assert!(store.get(&r.key).is_none());
    }
}
