//! The vix wire protocol. Generated from `proto/`; this crate holds no logic, so that every
//! role (region node, hub, simulator, tests) speaks exactly the same messages.
#![forbid(unsafe_code)]

/// `vix.region.v1`: organisation systems and regional front-ends talk to their region node.
pub mod region {
    pub mod v1 {
        #![allow(clippy::all, unreachable_pub, unused_qualifications, missing_docs)]
        tonic::include_proto!("vix.region.v1");
    }
}

/// `vix.federation.v1`: region nodes and the national hub.
pub mod federation {
    pub mod v1 {
        #![allow(clippy::all, unreachable_pub, unused_qualifications, missing_docs)]
        tonic::include_proto!("vix.federation.v1");
    }
}

/// `vix.pseudonym.v1`: region nodes and the pseudonym service (blind pseudonymisation).
pub mod pseudonym {
    pub mod v1 {
        #![allow(clippy::all, unreachable_pub, unused_qualifications, missing_docs)]
        tonic::include_proto!("vix.pseudonym.v1");
    }
}

/// Encoded `FileDescriptorSet` of every vix service, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("vix_descriptor");
