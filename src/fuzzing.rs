//! Entry points for the fuzz targets in `fuzz/` (cargo feature `fuzzing`,
//! off in every normal build): the module-internal readers of card data
//! that have no public path short of a PC/SC reader.

use crate::error::Result;
use crate::transport::Link;

/// Reads every object from the card behind `link`, as a token does when it
/// is opened (ENUMERATE, then each PrKD/CD/DCOD, certificate and request);
/// returns how many objects it found.
pub fn load_objects(link: &mut dyn Link) -> Result<usize> {
    let mut objects = crate::core::object::load(link)?;
    for o in objects.iter_mut() {
        crate::core::object::load_private_value(link, o)?;
    }
    Ok(objects.len())
}
